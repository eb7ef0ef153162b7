"""The catalog is the ground the other apps build on: it never names them; they plug in through catalog.extensions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UPPER_APPS = ("benchmarks", "probe", "inference")


def test_no_catalog_module_or_template_names_an_app_above_it():
    offenders = []
    python = re.compile(rf"^\s*(from|import)\s+({'|'.join(UPPER_APPS)})\b", re.M)
    for path in (ROOT / "catalog").rglob("*.py"):
        if python.search(path.read_text()):
            offenders.append(str(path.relative_to(ROOT)))
    named = re.compile(rf"""['"]({"|".join(UPPER_APPS)})[/:]""")
    for path in (ROOT / "templates" / "catalog").rglob("*.html"):
        if named.search(path.read_text()):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


@pytest.mark.django_db
def test_the_benchmarks_app_plugs_its_sections_into_catalog_pages(client):
    from catalog import extensions
    from tests.factories import make_hardware, make_model, make_quantization

    assert [s.template for s in extensions.sections("model")] == ["benchmarks/_model_section.html"]
    assert [s.template for s in extensions.sections("hardware")] == ["benchmarks/_hardware_section.html"]
    model = make_model(name="Plugged 8B", slug="plugged-8b")
    make_quantization(model, name="Q4_K_M", bits_per_weight=4.89)
    page = client.get("/models/plugged-8b/").text
    assert 'id="community-benchmarks"' in page and "No one has shared a benchmark of Plugged 8B yet" in page
    make_hardware(name="Plugged GPU", slug="plugged-gpu")
    assert "Community benchmarks" in client.get("/hardware/plugged-gpu/").text
