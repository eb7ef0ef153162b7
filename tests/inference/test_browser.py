"""The demo page in Debian's chromium, served over ASGI by uvicorn: tokens stream in, the stream closes once."""

from __future__ import annotations

import pytest

from inference.engine import GenerationParams
from tests.browser import chromium_page

# The page looks the demo model up in the catalog, from the server's thread: a database those threads can share.
pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_streams_a_generation_and_does_not_reconnect(live_asgi_url, make_tiny_engine):
    engine = make_tiny_engine(max_new_tokens=40)
    with chromium_page() as page:
        streams: list[str] = []
        page.on("request", lambda request: streams.append(request.url) if "/demo/stream/" in request.url else None)
        page.goto(f"{live_asgi_url}/demo/")
        # The `done` event makes htmx's SSE extension fire htmx:sseClose, then close() the EventSource: a closed
        # source never reconnects (htmx retries only one the browser closed on an error).
        page.evaluate("document.body.addEventListener('htmx:sseClose', e => { window.closedSource = e.detail.source })")
        page.fill("textarea[name=prompt]", "Hello there")
        page.fill("input[name=max_new_tokens]", "20")
        page.fill("input[name=temperature]", "0")
        page.click("button:has-text('Generate')")
        page.wait_for_selector(".demo-metrics-list", timeout=30_000)
        page.wait_for_function("() => window.closedSource && window.closedSource.readyState === EventSource.CLOSED")
        assert page.inner_text(".demo-live").startswith("20 tokens")
        assert "Decode" in page.inner_text(".demo-metrics")
        shown = page.eval_on_selector("#demo-output", "element => element.textContent")
        assert len(streams) == 1
        assert engine.last_metrics.tokens_generated == 20
    # The page shows what the engine generates for these settings (greedy: the same text every time).
    expected, _ = engine.generate_text(GenerationParams(prompt="Hello there", max_new_tokens=20, temperature=0.0))
    assert shown == expected


def test_it_shows_the_form_errors_in_place(live_asgi_url, make_tiny_engine):
    make_tiny_engine()
    with chromium_page() as page:
        page.goto(f"{live_asgi_url}/demo/")
        page.fill("textarea[name=prompt]", "Hello")
        page.fill("input[name=temperature]", "5")
        page.click("button:has-text('Generate')")
        page.wait_for_selector("#demo-form .errorlist", timeout=10_000)
        assert page.locator("textarea[name=prompt]").count() == 1
