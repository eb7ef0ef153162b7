from __future__ import annotations

import pytest

from tests.browser import chromium_page

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_updates_the_fit_panel_live_when_hardware_and_context_change(live_server, catalog):
    with chromium_page() as page:
        page.goto(f"{live_server.url}/models/llama-3-1-8b/")
        assert page.locator("#fit-panel").inner_text().count("Choose your hardware") == 1
        kv_before = page.locator(".kv-figure b").inner_text()

        page.select_option("select[name=hardware]", "geforce-rtx-4060")
        page.wait_for_selector(".verdict-title")
        assert "on GeForce RTX 4060" in page.locator(".verdict-title").inner_text()

        # Choose 64K tokens of context: the KV figure and the URL follow without a reload.
        page.select_option("select[name=ctx]", "65536")
        page.wait_for_function("() => document.querySelector('.kv-figure').textContent.includes('65,536')")
        assert page.locator(".kv-figure b").inner_text() != kv_before
        assert "ctx=65536" in page.url
        assert page.locator("select[name=ctx]").input_value() == "65536"


def test_it_works_without_javascript(live_server, catalog):
    with chromium_page() as page:
        context = page.context.browser.new_context(java_script_enabled=False)
        nojs = context.new_page()
        nojs.goto(f"{live_server.url}/models/llama-3-1-8b/")
        nojs.select_option("select[name=hardware]", "geforce-rtx-4090")
        with nojs.expect_navigation(wait_until="load"):
            nojs.click("noscript button, form.fit-form button[type=submit]")
        assert "hardware=geforce-rtx-4090" in nojs.url
        assert "Fits in GPU memory" in nojs.locator("#fit-panel").inner_text()
        context.close()
