"""/api/models?fits= answers from the device's shared fit table (catalog.services.fit_table: every model x quant
fitted at once, the hardware page's and /api/fits'), not one model at a time. Checked against the one-by-one path the
endpoint took before (services.best_fits over the filtered models, one best_quant per model): the same models, in the
same order, with the same count, on every page."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from catalog import fit
from catalog.models import Hardware, Model, ReviewStatus
from catalog.services import best_fits
from tests.factories import make_model, make_quantization

pytestmark = pytest.mark.django_db


def one_by_one(slug: str, *, ctx: int = 4096, **filters: str) -> list[str]:
    """The previous answer: best_fits over the filtered models (in their default `params` order), one at a time."""
    models = Model.objects.search(filters.get("q", "")).order_by("n_params", "name")
    if "band" in filters:
        models = models.in_param_band(filters["band"])
    if "modality" in filters:
        models = models.filter(modality=filters["modality"])
    found = best_fits(
        hardware=Hardware.objects.get(slug=slug), options=fit.FitOptions(ctx=ctx), models=models.with_quantizations()
    )
    return [best.model.slug for best in found]


def answered(client, slug: str, **params: object) -> dict:
    """Every page of the answer (at most RIGFIT_API_MAX_PAGE_SIZE, 100, items a page), joined."""
    items, count, page = [], None, 1
    while count is None or len(items) < count:
        response = client.get("/api/models", {"fits": slug, "page_size": 100, "page": page, **params})
        assert response.status_code == 200
        body = response.json()
        assert body["items"] or not body["count"]
        items += body["items"]
        count, page = body["count"], page + 1
    return {"items": items, "count": count}


@pytest.mark.parametrize(
    ("slug", "ctx"),
    [("geforce-rtx-4060", 4096), ("geforce-rtx-4060", 32768), ("apple-m2-max-32gb", 8192), ("ryzen-7-7700x", 4096)],
)
def test_it_answers_as_the_one_by_one_fit_does_on_the_small_catalog(client, catalog, slug, ctx):
    pending = make_model(name="Pending Import", slug="pending-import", review_status=ReviewStatus.PENDING)
    make_quantization(pending, name="Q4_K_M", bits_per_weight=4.85)
    body = answered(client, slug, ctx=ctx)
    expected = one_by_one(slug, ctx=ctx)
    assert [item["slug"] for item in body["items"]] == expected
    assert body["count"] == len(expected) > 0
    assert "pending-import" not in expected  # pending imports stay out of both


@pytest.fixture
def seeded(db) -> None:
    call_command("load_seed", "--skip-gpus", stdout=StringIO())


@pytest.mark.parametrize(
    ("slug", "ctx", "filters"),
    [
        ("apple-m2-max-96gb", 4096, {}),
        ("apple-m2-max-96gb", 131072, {}),
        ("raspberry-pi-5-8gb", 4096, {}),
        ("apple-m2-8gb", 8192, {"q": "qwen"}),
        ("apple-m3-ultra-96gb", 32768, {"band": "large"}),
        ("apple-m2-8gb", 4096, {"modality": "vision-language"}),
    ],
)
def test_it_answers_as_the_one_by_one_fit_does_on_the_seeded_catalog(client, seeded, slug, ctx, filters):
    body = answered(client, slug, ctx=ctx, **filters)
    expected = one_by_one(slug, ctx=ctx, **filters)
    assert [item["slug"] for item in body["items"]] == expected
    assert body["count"] == len(expected) > 0


def test_each_page_is_the_same_slice_of_the_ranking(client, seeded):
    expected = one_by_one("apple-m2-max-96gb")
    assert len(expected) > 45  # three pages of 20, the last one short
    pages = [
        client.get("/api/models", {"fits": "apple-m2-max-96gb", "page": page, "page_size": 20}).json()
        for page in (1, 2, 3)
    ]
    assert [[item["slug"] for item in page["items"]] for page in pages] == [
        expected[0:20],
        expected[20:40],
        expected[40:60],
    ]
    assert {page["count"] for page in pages} == {len(expected)}
    # Past the last page: an empty page, as without `fits`.
    assert client.get("/api/models", {"fits": "apple-m2-max-96gb", "page": 99}).json()["items"] == []


def test_a_page_reads_its_models_in_one_query_once_the_table_is_built(client, seeded, django_assert_max_num_queries):
    client.get("/api/models", {"fits": "apple-m2-max-96gb"})  # builds the device's table
    # The device, the filtered model ids, the page's models: whatever the catalog's size.
    with django_assert_max_num_queries(3):
        body = client.get("/api/models", {"fits": "apple-m2-max-96gb", "page": 2}).json()
    assert len(body["items"]) == 20
