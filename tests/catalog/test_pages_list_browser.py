"""The model list in Debian's chromium on a phone (390 px): filters and results fit the screen and pass axe; the
search swaps the results in place and keeps the URL in step; with JavaScript off the same form still filters."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.test_pages_browser import PHONE, audit, browser, seeded_site  # noqa: F401  (module fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.django_db, pytest.mark.xdist_group("pages-browser")]

LISTS = [
    "/models/?feature=moe&feature=swa&sort=released",
    "/models/?q=qwen&band=medium",
    "/models/?fits=nvidia-geforce-rtx-4060&ctx=16384&sort=-params",
]


@pytest.fixture
def phone(browser) -> Any:  # noqa: F811
    context = browser.new_context(viewport=PHONE, bypass_csp=True)  # axe is injected, as in test_pages_browser
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.mark.parametrize("path", LISTS)
def test_it_fits_a_phone_and_passes_axe(seeded_site, phone, path):  # noqa: F811
    result = audit(phone, seeded_site + path)
    assert result.scroll_width <= result.inner_width, result.describe()
    assert not result.blocking, result.describe()


def test_it_swaps_the_results_as_you_type(seeded_site, browser):  # noqa: F811
    context = browser.new_context(viewport=PHONE)
    try:
        page = context.new_page()
        page.goto(f"{seeded_site}/models/")
        page.evaluate("() => { window.sameDocument = true; }")
        page.fill("form.filters input[name=q]", "gemma")
        page.wait_for_url(re.compile(r"q=gemma"))
        page.wait_for_function(
            "() => [...document.querySelectorAll('#results td[data-model]')]"
            ".every(td => /gemma/.test(td.dataset.model))"
        )
        names = page.eval_on_selector_all("#results td[data-model]", "tds => tds.map(td => td.dataset.model)")
        assert names and all("gemma" in name for name in names)
        assert page.evaluate("() => window.sameDocument") is True  # swapped in place, no page load
    finally:
        context.close()


def test_it_filters_with_javascript_off(seeded_site, browser):  # noqa: F811
    context = browser.new_context(viewport=PHONE, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{seeded_site}/models/")
        page.check("input[name=feature][value=moe]")
        page.click("form.filters button[type=submit]")
        page.wait_for_url(re.compile(r"feature=moe"))
        names = page.eval_on_selector_all("#results td[data-model]", "tds => tds.map(td => td.dataset.model)")
        assert names, "no MoE model in the seed"
        assert "llama-3-1-8b" not in names  # a dense model
    finally:
        context.close()
