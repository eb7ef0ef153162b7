"""One context control on every page (issue 13): a <select> of powers of two from 512 to 128K (or the model's own
maximum), labelled 512, 1K ... 128K, always showing the context in use; it works without script and, with it,
updates the page in place from the keyboard."""

from __future__ import annotations

import re

import pytest

from catalog.forms import context_choices, context_label

pytestmark = pytest.mark.django_db

DEFAULT_OPTIONS = [
    ("512", "512"), ("1024", "1K"), ("2048", "2K"), ("4096", "4K"), ("8192", "8K"), ("16384", "16K"),
    ("32768", "32K"), ("65536", "64K"), ("131072", "128K"),
]  # fmt: skip


def ctx_controls(html: str) -> list[list[tuple[str, str, bool]]]:
    """Every context control on the page: its options as (value, label, selected)."""
    option = re.compile(r'<option value="(\d+)"( selected)?>([^<]+) tokens</option>')
    controls = re.findall(r'<select name="ctx"[^>]*>(.*?)</select>', html, re.S)
    return [[(v, label, bool(sel)) for v, sel, label in option.findall(c)] for c in controls]


def test_it_labels_contexts_as_people_say_them():
    assert [context_label(n) for n in (512, 1024, 4096, 131072, 5000, 40960)] == [
        "512", "1K", "4K", "128K", "5,000", "40K",
    ]  # fmt: skip


def test_it_offers_powers_of_two_up_to_the_maximum_and_the_context_in_use():
    assert context_choices(current=4096) == [(int(v), label) for v, label in DEFAULT_OPTIONS]
    assert context_choices(current=2048, maximum=2048) == [(512, "512"), (1024, "1K"), (2048, "2K")]
    # Qwen3's 40,960: the model's own maximum ends the scale; a context from a link is kept in order.
    assert context_choices(current=5000, maximum=40960) == [
        (512, "512"), (1024, "1K"), (2048, "2K"), (4096, "4K"), (5000, "5,000"), (8192, "8K"), (16384, "16K"),
        (32768, "32K"), (40960, "40K"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/models/?fits=geforce-rtx-4090",
        "/compare/?models=gemma-3-270m&models=llama-3-1-8b",
        "/hardware/geforce-rtx-4090/",
    ],
)
def test_it_has_one_context_control_from_512_to_128k_on_every_page(client, catalog, url):
    controls = ctx_controls(client.get(url).text)
    assert len(controls) == 1
    assert [(v, label) for v, label, _ in controls[0]] == DEFAULT_OPTIONS
    assert [v for v, _, selected in controls[0] if selected] == ["4096"]


def test_it_ends_a_model_pages_control_at_the_models_maximum(client, catalog):
    # Gemma 3 270M: 32,768 tokens at most.
    controls = ctx_controls(client.get("/models/gemma-3-270m/", {"ctx": 8192}).text)
    assert len(controls) == 1
    assert [(v, label) for v, label, _ in controls[0]] == DEFAULT_OPTIONS[:7]
    assert [v for v, _, selected in controls[0] if selected] == ["8192"]
    # Asked for more than the model takes: the control shows the maximum the figures use.
    clamped = ctx_controls(client.get("/models/gemma-3-270m/", {"ctx": 131072}).text)[0]
    assert [v for v, _, selected in clamped if selected] == ["32768"]


def test_it_keeps_a_context_from_a_link_selected(client, catalog):
    controls = ctx_controls(client.get("/compare/", {"models": ["gemma-3-270m", "llama-3-1-8b"], "ctx": 5000}).text)
    assert ("5000", "5,000", True) in controls[0]


def test_it_submits_the_control_with_its_form_without_script(client, catalog):
    html = client.get("/models/llama-3-1-8b/").text
    form = html.split('<form class="fit-form"')[1].split("</form>")[0]
    assert '<select name="ctx" data-ctx-control>' in form
    assert '<noscript><button type="submit">Update</button></noscript>' in form
    assert 'type="range"' not in html


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_changes_the_context_from_the_keyboard(live_server, catalog):
    from tests.browser import chromium_page

    with chromium_page() as page:
        page.goto(f"{live_server.url}/models/llama-3-1-8b/?ctx=4096")
        page.focus("select[name=ctx]")
        page.keyboard.press("ArrowDown")  # the next power of two: 8K
        page.wait_for_function("() => document.querySelector('.kv-figure').textContent.includes('8,192')")
        assert "ctx=8192" in page.url
        assert page.locator("select[name=ctx]").input_value() == "8192"
