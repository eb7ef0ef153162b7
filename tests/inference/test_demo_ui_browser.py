"""The demo page as a visitor meets it (issue 13): working defaults, readable text, an end, no stale errors."""

from __future__ import annotations

import pytest

from tests.browser import chromium_page

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# WCAG contrast of an element's text colour against the first opaque background behind it.
CONTRAST = """(selector) => {
  const rgb = (s) => s.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const el = document.querySelector(selector);
  let node = el, back = [255, 255, 255];
  while (node) {
    const c = rgb(getComputedStyle(node).backgroundColor);
    if (c.length === 3 || c[3] > 0) { back = c.slice(0, 3); break; }
    node = node.parentElement;
  }
  const fore = lum(rgb(getComputedStyle(el).color)), behind = lum(back);
  return (Math.max(fore, behind) + 0.05) / (Math.min(fore, behind) + 0.05);
}"""


def test_it_generates_with_the_default_settings_and_says_when_it_is_done(live_asgi_url, make_tiny_engine):
    make_tiny_engine()
    with chromium_page() as page:
        page.goto(f"{live_asgi_url}/demo/")
        assert page.input_value("textarea[name=prompt]").strip(), "the prompt box starts empty"
        page.click("button:has-text('Generate')")
        page.wait_for_selector(".demo-metrics-list", timeout=30_000)
        assert page.inner_text("#demo-live-status").startswith("Done:")
        assert page.inner_text("#demo-output").strip()
        for selector in ("#demo-output", ".demo-prompt", "#demo-live-status"):
            ratio = page.evaluate(CONTRAST, selector)
            assert ratio >= 4.5, f"{selector}: contrast {ratio:.2f}:1"
        # The counts above the form follow the run: back to 0 running once the stream has ended.
        page.wait_for_function("() => document.querySelector('#demo-status').textContent.includes('0 running')")


def test_it_counts_one_token_in_the_singular(live_asgi_url, make_tiny_engine):
    make_tiny_engine()
    with chromium_page() as page:
        page.goto(f"{live_asgi_url}/demo/")
        page.fill("input[name=max_new_tokens]", "1")
        page.click("button:has-text('Generate')")
        page.wait_for_selector(".demo-metrics-list", timeout=30_000)
        assert page.inner_text(".demo-live").startswith("1 token ·")
        assert "1 token at" in page.inner_text(".demo-metrics")
        assert page.inner_text("#demo-live-status") == "Done: 1 token generated."


def test_it_clears_an_error_once_a_later_run_succeeds(live_asgi_url, make_tiny_engine):
    make_tiny_engine()
    with chromium_page() as page:
        page.goto(f"{live_asgi_url}/demo/")
        page.fill("textarea[name=prompt]", "")
        page.click("button:has-text('Generate')")
        page.wait_for_selector("#demo-form .errorlist", timeout=10_000)
        page.fill("textarea[name=prompt]", "Hello there")
        page.fill("input[name=max_new_tokens]", "5")
        page.click("button:has-text('Generate')")
        page.wait_for_selector(".demo-metrics-list", timeout=30_000)
        assert page.locator("#demo-form .errorlist").count() == 0
