"""Retake the README's screenshots: `python docs/screenshots/take_screenshots.py http://127.0.0.1:8000`.

Serve the seeded site first (`make run`); needs Playwright and Debian's chromium (`make browser`). Each page is shot at
390x844 (phone) and 1366x900 (desktop), light scheme, then reduced to a 256-colour palette to keep the files small.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1366, "height": 900}}
# name: (path, the element scrolled to the top of the screen or None)
PAGES = {
    "home": ("/", None),
    "model": ("/models/llama-3-1-8b/?hardware=nvidia-geforce-rtx-4060&ctx=8192", "#fit-h"),
    "hardware": ("/hardware/nvidia-geforce-rtx-4060/", None),
    "compare": ("/compare/?models=llama-3-1-8b&models=qwen2-5-7b&models=gemma-3-12b", None),
    "benchmarks": ("/benchmarks/", None),
    "accuracy": ("/benchmarks/accuracy/", None),
    "demo": ("/demo/", None),
}


def main(base: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless=new"])
        for label, viewport in VIEWPORTS.items():
            context = browser.new_context(viewport=viewport, color_scheme="light")
            page = context.new_page()
            for name, (path, anchor) in PAGES.items():
                page.goto(base.rstrip("/") + path, wait_until="load")
                if anchor:
                    page.evaluate("(sel) => scrollTo(0, document.querySelector(sel).offsetTop - 12)", anchor)
                page.wait_for_timeout(300)
                target = HERE / f"{name}-{label}.png"
                page.screenshot(path=str(target))
                Image.open(target).convert("RGB").quantize(colors=256, dither=Image.Dither.NONE).save(
                    target, optimize=True
                )
                print(f"{target.name}: {target.stat().st_size // 1024} KB")
            context.close()
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000")
