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


def test_it_says_so_and_stops_when_the_stream_is_refused(live_asgi_url, make_tiny_engine):
    from inference.views import demo_gate

    engine = make_tiny_engine()
    held = []

    def start_another_run_first(route) -> None:
        # Between the page's POST and its stream, the same visitor starts a run elsewhere (another tab, the API):
        # the stream is refused with 429 before any event.
        held.append(demo_gate(engine).admit("127.0.0.1"))
        route.continue_()

    with chromium_page() as page:
        streams: list[int] = []
        page.on("response", lambda r: streams.append(r.status) if "/demo/stream/" in r.url else None)
        page.route("**/demo/stream/**", start_another_run_first)
        page.goto(f"{live_asgi_url}/demo/")
        page.click("button:has-text('Generate')")
        status = page.wait_for_selector(".demo-live-status.demo-error", timeout=30_000)
        assert "could not start" in status.inner_text()
        assert page.locator(".demo-run[sse-connect]").count() == 0  # nothing left for htmx to retry
        assert streams == [429]
    for admission in held:
        admission.release()
    assert len(held) == 1
