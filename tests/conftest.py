from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def catalog(db):
    """A small catalog: Gemma 3 270M and a Llama 8B shape with quant ladders, a 24 GB GPU, an 8 GB GPU, a Mac, a CPU."""
    from tests.factories import make_catalog

    return make_catalog()
