"""Issue #12, defect 5 (part): moderating is a permission of its own, not every staff member's."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group

from benchmarks import services
from benchmarks.models import Status
from tests.benchmarks.conftest import make_run

pytestmark = pytest.mark.django_db


def test_the_migration_creates_a_moderators_group_with_the_permission():
    # Called with the live registry: a transactional test elsewhere may have flushed the migrated rows.
    migration = importlib.import_module("benchmarks.migrations.0004_moderators")
    Group.objects.filter(name="Benchmark moderators").delete()
    migration.create_group(django_apps, None)
    group = Group.objects.get(name="Benchmark moderators")
    assert list(group.permissions.values_list("codename", flat=True)) == ["moderate_benchmarkrun"]


def test_a_staff_member_without_the_permission_cannot_moderate(client, gemma, epyc, django_user_model):
    run = make_run()  # anonymous: pending
    client.force_login(django_user_model.objects.create_user(username="editor", password="x", is_staff=True))
    assert client.get("/benchmarks/moderation/").status_code == 403
    response = client.post(f"/benchmarks/runs/{run.pk}/moderate/", {"decision": "accepted", "reason": "looks fine"})
    assert response.status_code == 403
    run.refresh_from_db()
    assert run.status == Status.PENDING


def test_a_moderator_need_not_be_staff(client, gemma, epyc, django_user_model):
    run = make_run()
    moderator = django_user_model.objects.create_user(username="volunteer", password="x")
    moderator.groups.add(services.moderators_group())
    client.force_login(moderator)
    assert client.get("/benchmarks/moderation/").status_code == 200
    response = client.post(f"/benchmarks/runs/{run.pk}/moderate/", {"decision": "rejected", "reason": "fabricated"})
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == Status.REJECTED
    assert client.get(f"/api/benchmarks/{run.pk}").status_code == 200  # moderators still see rejected runs


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get("/benchmarks/moderation/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")
