"""load_seed writes in bulk (no save signals), so it must tell the page cache itself that the catalog changed."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from catalog.caching import data_version
from catalog.models import Model

pytestmark = pytest.mark.django_db


def _load(capture) -> None:
    with capture(execute=True):
        call_command("load_seed", "--skip-gpus", stdout=open("/dev/null", "w"))  # noqa: SIM115


def test_it_moves_the_data_version_when_the_seed_changes_the_catalog(django_capture_on_commit_callbacks):
    before = data_version()
    _load(django_capture_on_commit_callbacks)
    assert Model.objects.exists()
    assert data_version() > before


def test_it_keeps_the_data_version_when_a_reload_changes_nothing(django_capture_on_commit_callbacks):
    _load(django_capture_on_commit_callbacks)
    settled = data_version()
    _load(django_capture_on_commit_callbacks)
    assert data_version() == settled


def test_it_moves_the_data_version_when_only_a_model_changes(django_capture_on_commit_callbacks):
    _load(django_capture_on_commit_callbacks)
    Model.all_objects.filter(slug="gemma-3-270m").update(description="edited by hand")  # .update sends no signal
    settled = data_version()
    _load(django_capture_on_commit_callbacks)
    assert Model.all_objects.get(slug="gemma-3-270m").description != "edited by hand"
    assert data_version() > settled
