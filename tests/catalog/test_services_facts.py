"""catalog_facts reads the catalog with two values() queries instead of Model and Quantization instances: the facts
must be the ones model_facts builds from the instances (the fit tables are built from them)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from catalog import services
from catalog.models import Model
from tests.factories import make_model, make_quantization

pytestmark = pytest.mark.django_db


def _from_instances() -> list[services.ModelFacts]:
    return [services.model_facts(model) for model in Model.objects.with_quantizations()]


@pytest.mark.slow
def test_it_reads_the_seed_catalogs_facts_as_model_facts_does():
    call_command("load_seed", stdout=StringIO())
    facts = services._listed_facts()
    assert len(facts) >= 100
    assert facts == _from_instances()


def test_it_keeps_one_quant_per_name_and_leaves_pending_models_out():
    model = make_model(name="Dup", n_params=2_000_000_000)
    # The same name in two formats (the unique key is model, format, name): the pick sees one, as model_facts does.
    make_quantization(model, name="Q4_K_M", format="gguf", bits_per_weight=4.89, file_bytes=1_300_000_000)
    make_quantization(model, name="Q4_K_M", format="mlx", bits_per_weight=4.5, file_bytes=1_200_000_000)
    make_quantization(model, name="Q8_0", bits_per_weight=8.5)
    make_model(name="No quants", n_params=1_000_000_000)
    facts = services._listed_facts()
    assert facts == _from_instances()
    dup = next(f for f in facts if f.name == "Dup")
    assert [q.name for q in dup.quants] == ["Q8_0", "Q4_K_M"]  # bits descending, one Q4_K_M
    assert next(f for f in facts if f.name == "No quants").quants == ()
    Model.all_objects.filter(name="Dup").update(review_status="pending")
    assert "Dup" not in [f.name for f in services._listed_facts()]
