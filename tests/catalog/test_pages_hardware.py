"""The hardware page's ranked list, paged: counts for the whole catalog, rows for the page shown."""

from __future__ import annotations

import re

import pytest

from tests.factories import GEMMA3_270M_SHAPE, make_model, make_quantization

pytestmark = pytest.mark.django_db


def test_it_pages_the_ranked_list_and_counts_the_whole_catalog(client, catalog):
    # 60 copies of Gemma 3 270M's shape (about 0.3 GB at Q8_0) beside the fixture's two models: all 62 fit entirely
    # on the 24 GiB card at 4,096 tokens. 50 rows per page: 50, then 12.
    for n in range(60):
        model = make_model(name=f"Tiny {n:02d}", slug=f"tiny-{n:02d}", **GEMMA3_270M_SHAPE)
        make_quantization(model, name="Q8_0", bits_per_weight=8.5)
    first = client.get("/hardware/geforce-rtx-4090/", {"ctx": 4096})
    rows = re.findall(r'<tr data-model="([^"]+)">', first.text)
    assert len(rows) == 50
    assert "(62 models at 4,096 tokens" in first.text and "Page 1 of 2" in first.text
    assert 'href="?ctx=4096&amp;page=2"' in first.text
    second = client.get("/hardware/geforce-rtx-4090/", {"ctx": 4096, "page": 2})
    rest = re.findall(r'<tr data-model="([^"]+)">', second.text)
    assert len(rest) == 12 and not set(rows) & set(rest)
    # Ranked: fits entirely first, then larger models first: Llama 3.1 8B leads page 1.
    assert rows[0] == "llama-3-1-8b"
    # The htmx swap of a page is the same fragment.
    swap = client.get("/hardware/geforce-rtx-4090/", {"ctx": 4096, "page": 2}, headers={"HX-Request": "true"})
    assert swap.text.lstrip().startswith('<section id="hardware-fits"')
    assert re.findall(r'<tr data-model="([^"]+)">', swap.text) == rest
