from __future__ import annotations

import tomllib

import pytest
from django.core.management import call_command

from benchmarks.management.commands.load_benchmark_seed import SEED
from benchmarks.models import BenchmarkRun
from catalog.models import HardwareKind
from tests.factories import make_hardware, make_model, make_quantization

pytestmark = pytest.mark.django_db


def test_every_seeded_run_cites_a_public_source():
    for entry in tomllib.loads(SEED.read_text())["runs"]:
        assert entry["source_url"].startswith("https://")


def test_the_seed_goes_through_the_checks_once(capsys):
    model = make_model(slug="llama-3-1-8b", name="Llama 3.1 8B")
    make_quantization(model, name="Q4_K_M", bits_per_weight=4.89)
    make_hardware(
        slug="apple-m4-16gb", name="Apple M4 16GB", vendor="Apple", kind=HardwareKind.UNIFIED, bandwidth_gbps=120.0
    )
    make_hardware(
        slug="apple-m1-max-64gb",
        name="Apple M1 Max 64GB",
        vendor="Apple",
        kind=HardwareKind.UNIFIED,
        bandwidth_gbps=400.0,
    )
    call_command("load_benchmark_seed")
    call_command("load_benchmark_seed")
    assert "0 stored, 4 already there" in capsys.readouterr().out
    runs = BenchmarkRun.objects.all()
    assert runs.count() == 4
    assert all(run.source_url and run.channel == "seed" and run.status == "accepted" for run in runs)
    assert sorted(runs.filter(test="tg").values_list("avg_ts", flat=True)) == [20.87, 46.2]
