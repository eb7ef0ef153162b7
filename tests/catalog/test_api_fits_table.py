"""/api/fits answers from the shared fit table (the hardware page's, every model x quant fitted at once). Checked
against the one-by-one path the same endpoint takes when a measured bandwidth is given: with the catalog's own
figure as the "measured" one, the device is the same, so every row must be the same, in the same order."""

from __future__ import annotations

import pytest

from catalog.models import ReviewStatus
from tests.factories import make_model, make_quantization

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("slug", "extra"),
    [
        ("geforce-rtx-4060", {}),
        ("geforce-rtx-4060", {"ctx": 32768}),
        ("geforce-rtx-4090", {"gpu_count": 2, "ctx": 131072}),
        ("apple-m2-max-32gb", {"ctx": 8192}),
        ("ryzen-7-7700x", {}),
    ],
)
def test_it_answers_as_the_one_by_one_fit_does(client, catalog, slug, extra):
    hardware = next(h for h in catalog.values() if getattr(h, "slug", None) == slug)
    pending = make_model(name="Pending Import", slug="pending-import", review_status=ReviewStatus.PENDING)
    make_quantization(pending, name="Q4_K_M", bits_per_weight=4.85)

    from_table = client.get("/api/fits", {"hardware": slug, **extra})
    one_by_one = client.get("/api/fits", {"hardware": slug, "bandwidth_gbps": hardware.bandwidth_gbps, **extra})

    assert from_table.status_code == one_by_one.status_code == 200
    assert from_table.json() == one_by_one.json()
    assert from_table.json(), "the small catalog runs somewhere on every device listed"
    assert "pending-import" not in {row["model"] for row in from_table.json()}  # pending imports stay out
