"""detect.js in Debian chromium: the detect button preselects the matching device and the fit panel follows."""

from __future__ import annotations

import pytest

from tests.browser import chromium_page
from tests.factories import GEMMA3_270M_SHAPE, make_hardware, make_model, make_quantization

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# WebGPU adapter info as Chrome reports it for an RTX 4090 (the boundary: the browser's own GPU API).
FAKE_WEBGPU = """
Object.defineProperty(navigator, "gpu", {configurable: true, value: {requestAdapter: async () => ({
  info: {vendor: "nvidia", architecture: "lovelace", device: "", description: "NVIDIA GeForce RTX 4090"}})}});
"""


@pytest.fixture
def catalog():
    make_hardware(name="GeForce RTX 4060", slug="geforce-rtx-4060", memory_bytes=8 * 1024**3, popular=True)
    make_hardware(name="GeForce RTX 4090", slug="geforce-rtx-4090", popular=False)
    model = make_model(name="Gemma 3 270M", slug="gemma-3-270m", family="gemma3", **GEMMA3_270M_SHAPE)
    make_quantization(model, name="Q4_K_M", bits_per_weight=4.89, file_bytes=253_115_520)
    return model


def test_it_preselects_the_detected_device_and_updates_the_fit(live_server, catalog):
    with chromium_page() as page:
        page.add_init_script(FAKE_WEBGPU)
        page.goto(f"{live_server.url}/models/gemma-3-270m/")
        page.click("button[data-detect-hardware]")
        page.wait_for_function(
            "() => document.querySelector('.detect-result').textContent.includes('change it if wrong')"
        )
        assert page.locator("select[name=hardware]").input_value() == "geforce-rtx-4090"
        assert (
            "Detected: GeForce RTX 4090 (WebGPU reports “NVIDIA GeForce RTX 4090”"
            in page.locator(".detect-result").inner_text()
        )
        page.wait_for_selector(".verdict-title")
        assert "GeForce RTX 4090" in page.locator(".verdict-title").inner_text()


def test_it_says_so_when_the_browser_gpu_is_not_in_the_catalog(live_server, catalog):
    # Headless chromium renders with SwiftShader, a software GPU: nothing in the catalog.
    with chromium_page() as page:
        page.goto(f"{live_server.url}/models/gemma-3-270m/")
        page.click("button[data-detect-hardware]")
        page.wait_for_function("() => !document.querySelector('button[data-detect-hardware]').disabled")
        text = page.locator(".detect-result").inner_text()
        assert text.startswith("Detected:") or "does not say" in text
        assert page.locator("select[name=hardware]").input_value() == ""


def test_it_opens_the_device_page_from_the_probe_page(live_server, catalog):
    with chromium_page() as page:
        page.add_init_script(FAKE_WEBGPU)
        page.goto(f"{live_server.url}/probe/")
        page.click("button[data-detect-hardware]")
        page.wait_for_url("**/hardware/geforce-rtx-4090/")
