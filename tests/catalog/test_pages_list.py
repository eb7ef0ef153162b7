"""The model list over HTTP: search, architecture filters, release dates, sort, the "new" badge, htmx and no-JS."""

from __future__ import annotations

import datetime
import re

import pytest
from django.utils import timezone

from catalog.models import NEW_MODEL_DAYS, Modality
from tests.factories import GEMMA3_270M_SHAPE, make_model, make_quantization

pytestmark = pytest.mark.django_db

# The clock every test here runs at: 1 March 2026, noon UTC.
TODAY = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: TODAY)


def listed(html: str) -> list[str]:
    """The model slugs of the rendered list, in page order."""
    return re.findall(r'<td data-model="([^"]+)">', html)


@pytest.fixture
def lineup(catalog):
    """Beside the catalog fixture's Gemma 3 270M and Llama 3.1 8B: a MoE, a hybrid, a VLM and an MLA model, dated."""
    moe = make_model(
        name="Mixtral Test 8x7B",
        slug="mixtral-test",
        family="mixtral",
        publisher="Mistral AI",
        n_params=46_702_792_704,
        n_active_params=12_879_925_248,
        n_experts=8,
        n_experts_used=2,
        released=datetime.date(2025, 12, 1),  # exactly 90 days before 1 March 2026: still new
    )
    hybrid = make_model(
        name="Granite Hybrid Test",
        slug="granite-hybrid-test",
        family="granite",
        publisher="IBM",
        n_layers=8,
        attention_layers=[3, 7],
        recurrent_layers=[0, 1, 2, 4, 5, 6],
        recurrent_state_values=1_000_000,
        released=datetime.date(2025, 11, 30),  # 91 days before: not new any more
    )
    vlm = make_model(
        name="Pixel Reader Test",
        slug="pixel-reader-test",
        family="pixel",
        publisher="Vision Lab",
        modality=Modality.VISION,
        vision_params=400_000_000,
        image_tokens=256,
        released=datetime.date(2026, 2, 20),
    )
    mla = make_model(
        name="Latent Test",
        slug="latent-test",
        family="deepseek",
        publisher="DeepSeek",
        kv_lora_rank=512,
        qk_rope_head_dim=64,
        released=datetime.date(2024, 12, 26),
    )
    for model in (moe, hybrid, vlm, mla):
        make_quantization(model, name="Q4_K_M", bits_per_weight=4.89)
    return {**catalog, "moe": moe, "hybrid": hybrid, "vlm": vlm, "mla": mla}


def test_it_searches_names_families_and_publishers(client, lineup):
    assert listed(client.get("/models/", {"q": "pixel reader"}).text) == ["pixel-reader-test"]
    assert listed(client.get("/models/", {"q": "GRANITE"}).text) == ["granite-hybrid-test"]  # family, any case
    assert listed(client.get("/models/", {"q": "deepseek"}).text) == ["latent-test"]  # family and publisher
    assert listed(client.get("/models/", {"q": "mistral ai"}).text) == ["mixtral-test"]  # publisher only
    page = client.get("/models/", {"q": "no such thing"}).text
    assert listed(page) == [] and "No model matches" in page


@pytest.mark.parametrize(
    ("features", "expected"),
    [
        (["moe"], ["mixtral-test"]),
        (["hybrid"], ["granite-hybrid-test"]),
        (["vision"], ["pixel-reader-test"]),
        (["mla"], ["latent-test"]),
        (["swa"], ["gemma-3-270m"]),  # Gemma 3's 5-of-6 sliding-window layers
        (["moe", "vision"], []),  # several features narrow the list
    ],
)
def test_it_filters_by_architecture_feature(client, lineup, features, expected):
    assert listed(client.get("/models/", {"feature": features}).text) == expected


def test_it_filters_by_size_band_and_modality(client, lineup):
    # Bands are [low, high): 10B to 40B holds nothing here; 40B and up holds the 46.7B MoE only.
    assert listed(client.get("/models/", {"band": "huge"}).text) == ["mixtral-test"]
    assert listed(client.get("/models/", {"band": "large"}).text) == []
    assert listed(client.get("/models/", {"modality": "vision-language"}).text) == ["pixel-reader-test"]


def test_it_sorts_by_release_newest_first_with_undated_models_last(client, lineup):
    page = client.get("/models/", {"sort": "released"}).text
    # 2026-02-20, 2025-12-01, 2025-11-30, 2024-12-26, then the two undated models by name.
    assert listed(page) == [
        "pixel-reader-test",
        "mixtral-test",
        "granite-hybrid-test",
        "latent-test",
        "gemma-3-270m",
        "llama-3-1-8b",
    ]
    assert '<time datetime="2026-02-20">20 Feb 2026</time>' in page


def test_it_sorts_by_name_and_by_size(client, lineup):
    by_name = listed(client.get("/models/", {"sort": "name"}).text)
    # Alphabetical by name: Gemma, Granite, Latent, Llama, Mixtral, Pixel.
    assert by_name == [
        "gemma-3-270m",
        "granite-hybrid-test",
        "latent-test",
        "llama-3-1-8b",
        "mixtral-test",
        "pixel-reader-test",
    ]
    largest = listed(client.get("/models/", {"sort": "-params"}).text)
    assert largest[0] == "mixtral-test" and largest[-1] == "gemma-3-270m"


def test_it_marks_models_released_in_the_last_90_days_as_new(client, lineup):
    assert NEW_MODEL_DAYS == 90
    page = client.get("/models/", {"sort": "released"}).text
    rows = dict(re.findall(r'<td data-model="([^"]+)">(.*?)</td>', page, re.S))
    new = {slug for slug, cell in rows.items() if "badge-new" in cell}
    # 1 March 2026 minus 90 days is 1 December 2025 (30 + 31 + 28 + 1 days back): that day counts, the 30th does not.
    assert new == {"pixel-reader-test", "mixtral-test"}
    assert listed(client.get("/models/", {"released": "new"}).text) == ["pixel-reader-test", "mixtral-test"]  # by size
    # The last 12 months (since 1 March 2025) drop the December 2024 release.
    assert "latent-test" not in listed(client.get("/models/", {"released": "year"}).text)
    # The model page says it too.
    assert "badge-new" in client.get("/models/pixel-reader-test/").text
    assert "badge-new" not in client.get("/models/granite-hybrid-test/").text


def test_it_swaps_one_fragment_that_the_full_page_also_holds(client, lineup):
    full = client.get("/models/", {"q": "test"})
    swap = client.get("/models/", {"q": "test"}, headers={"HX-Request": "true"})
    assert swap.text.lstrip().startswith('<section id="results"') and "<html" not in swap.text
    assert "<html" in full.text and '<section id="results"' in full.text
    assert (
        listed(swap.text)
        == listed(full.text)
        == [
            "granite-hybrid-test",
            "latent-test",
            "pixel-reader-test",
            "mixtral-test",
        ]
    )


def test_it_works_without_javascript(client, lineup):
    page = client.get("/models/").text
    # A plain GET form with a submit button: every filter works as a query string, htmx only speeds it up.
    assert re.search(r'<form class="filters" method="get" action="/models/"', page)
    assert '<button type="submit">Filter</button>' in page
    assert 'type="checkbox" name="feature" value="moe"' in page
    # A checked box stays checked in the page it leads to.
    checked = client.get("/models/", {"feature": "moe"}).text
    assert re.search(r'<input type="checkbox" name="feature" value="moe"[^>]* checked', checked)


def test_it_pages_long_lists_with_plain_links(client, catalog):
    for n in range(30):
        make_model(name=f"Filler {n:02d}", slug=f"filler-{n:02d}", **GEMMA3_270M_SHAPE)
    first = client.get("/models/", {"sort": "name", "q": "filler"}).text
    assert len(listed(first)) == 24 and "(page 1 of 2)" in first
    assert 'href="?sort=name&amp;q=filler&amp;page=2"' in first
    second = client.get("/models/", {"sort": "name", "q": "filler", "page": 2}).text
    assert listed(second) == [f"filler-{n:02d}" for n in range(24, 30)]


def test_it_keeps_filters_and_fits_together(client, lineup):
    # Fits on the 8 GiB card: the filters narrow the device's ranked list, and a sort reorders it.
    ranked = listed(client.get("/models/", {"fits": "geforce-rtx-4060", "ctx": 4096}).text)
    assert set(ranked) >= {"llama-3-1-8b", "gemma-3-270m"}
    assert listed(client.get("/models/", {"fits": "geforce-rtx-4060", "q": "llama"}).text) == ["llama-3-1-8b"]
    by_name = listed(client.get("/models/", {"fits": "geforce-rtx-4060", "sort": "name"}).text)
    assert by_name == sorted(by_name, key=lambda slug: slug.replace("-", " "))


def test_it_says_where_a_models_data_came_from(client, lineup):
    curated = make_model(
        name="Cited Test",
        slug="cited-test",
        sources={"n_layers": "https://example.org/config.json at commit abc"},
    )
    page = client.get(curated.get_absolute_url()).text
    assert 'data-provenance="curated"' in page and "architecture from" in page
    assert "https://example.org/config.json" in page
    imported = make_model(
        name="Imported Test",
        slug="imported-test",
        review_status="unreviewed",
        source_repo="someone/imported-test",
        source_revision="0123456789abcdef0123",
    )
    page = client.get(imported.get_absolute_url()).text
    assert 'data-provenance="imported"' in page
    assert "Imported from someone/imported-test@0123456789ab, not reviewed" in page
    assert "imported, not reviewed" in client.get("/models/", {"q": "imported"}).text
