"""The model page's comparable models, read as neighbours in size (bounded queries, whatever the catalog's size)."""

from __future__ import annotations

import pytest

from catalog.models import Modality
from tests.factories import make_model

pytestmark = pytest.mark.django_db

B = 1_000_000_000


def _comparable(client, slug: str) -> list[str]:
    return [m.slug for m in client.get(f"/models/{slug}/").context["comparable"]]


def test_it_picks_three_of_the_band_the_largest_below_and_the_smallest_above(client, catalog):
    # Llama 3.1 8B sits in the 4B-10B band. Same band: featured first, then smallest. Below (1B-4B): the largest.
    # Above (10B-40B): the smallest. Vision models and the 40B+ band stay out.
    for slug, params, featured in [
        ("m-9b", 9.0, True),
        ("m-4b", 4.0, False),
        ("m-5b", 5.0, False),
        ("m-7b", 7.0, False),
        ("s-1b", 1.5, False),
        ("s-3b", 3.9, False),
        ("l-14b", 14.0, False),
        ("l-32b", 32.0, False),
        ("h-70b", 70.0, False),
    ]:
        make_model(name=slug, slug=slug, n_params=int(params * B), featured=featured)
    make_model(name="v-8b", slug="v-8b", n_params=8 * B, modality=Modality.VISION)
    assert _comparable(client, "llama-3-1-8b") == ["m-9b", "m-4b", "m-5b", "s-3b", "l-14b"]


def test_it_compares_a_vision_model_with_the_nearest_vision_models_in_log_size(client, catalog):
    # |log(other / 4B)|: 3B 0.288, 5B 0.223, 2B 0.693, 8B 0.693 (ties: the smaller first), 12B 1.099, 1B 1.386.
    for slug, params in [("v-1b", 1), ("v-2b", 2), ("v-3b", 3), ("v-5b", 5), ("v-8b", 8), ("v-12b", 12)]:
        make_model(name=slug, slug=slug, n_params=params * B, modality=Modality.VISION)
    make_model(name="v-4b", slug="v-4b", n_params=4 * B, modality=Modality.VISION)
    make_model(name="t-4b", slug="t-4b", n_params=4 * B)
    assert _comparable(client, "v-4b") == ["v-5b", "v-3b", "v-2b", "v-8b", "v-12b"]
