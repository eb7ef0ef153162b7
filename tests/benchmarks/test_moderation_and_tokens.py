from __future__ import annotations

import json

import pytest

from benchmarks.models import ApiToken, BenchmarkRun, ModerationDecision, Status, hash_token
from tests.benchmarks.conftest import make_run, run_data

pytestmark = pytest.mark.django_db


def test_the_moderation_page_is_for_moderators_only(client, user, gemma, epyc):
    assert client.get("/benchmarks/moderation/").status_code == 302  # to the sign-in page
    client.force_login(user)
    assert client.get("/benchmarks/moderation/").status_code == 403


def test_staff_see_pending_and_flagged_runs_and_decide_with_a_reason(client, staff, gemma, epyc):
    pending = make_run(user=None)
    client.force_login(staff)
    html = client.get("/benchmarks/moderation/").content.decode()
    assert f"run-{pending.pk}" in html and "Anonymous submission" in html
    url = f"/benchmarks/runs/{pending.pk}/moderate/"
    assert client.get(url).status_code == 405
    client.post(url, {"decision": "accepted", "reason": ""})
    assert BenchmarkRun.objects.get(pk=pending.pk).status == Status.PENDING  # no reason, no decision
    response = client.post(url, {"decision": "rejected", "reason": "Numbers copied from a forum post"}, follow=True)
    assert response.status_code == 200
    pending.refresh_from_db()
    assert (pending.status, pending.status_reason) == ("rejected", "Numbers copied from a forum post")
    decision = ModerationDecision.objects.filter(moderator=staff).get()
    assert (decision.from_status, decision.to_status) == ("pending", "rejected")
    assert "Numbers copied from a forum post" in client.get("/benchmarks/moderation/").content.decode()


def test_rejected_runs_are_hidden_from_others(client, staff, user, gemma, epyc):
    from benchmarks import services

    run = make_run(user=None)
    services.moderate(run=run, moderator=staff, decision="rejected", reason="spam")
    assert client.get(run.get_absolute_url()).status_code == 404
    client.force_login(staff)
    assert client.get(run.get_absolute_url()).status_code == 200


def test_the_admin_actions_record_decisions(client, django_user_model, gemma, epyc):
    admin = django_user_model.objects.create_superuser(username="root", password="x-very-long-pw-1")
    run = make_run(user=None)
    client.force_login(admin)
    response = client.post(
        "/admin/benchmarks/benchmarkrun/", {"action": "accept_runs", "_selected_action": [run.pk]}, follow=True
    )
    assert response.status_code == 200
    run.refresh_from_db()
    assert run.status == Status.ACCEPTED
    assert ModerationDecision.objects.filter(run=run, moderator=admin, to_status="accepted").exists()


def test_a_token_is_shown_once_and_only_its_hash_is_stored(client, user, gemma, epyc):
    assert client.get("/benchmarks/tokens/").status_code == 302
    client.force_login(user)
    response = client.post("/benchmarks/tokens/", {"name": "workstation"})
    assert response.status_code == 201
    raw = response.context["new_token"]
    token = ApiToken.objects.get(user=user)
    assert raw.startswith("rfb_") and token.token_hash == hash_token(raw)
    assert raw not in json.dumps(list(ApiToken.objects.values()), default=str)
    assert raw not in client.get("/benchmarks/tokens/").content.decode()

    client.logout()
    sent = client.post(
        "/api/benchmarks", json.dumps(run_data()), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    assert sent.status_code == 201

    client.force_login(user)
    client.post(f"/benchmarks/tokens/{token.pk}/revoke/")
    client.logout()
    again = client.post(
        "/api/benchmarks",
        json.dumps(run_data(avg_ts=51.0, samples_ts=[])),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert again.status_code == 401


def test_nobody_revokes_someone_elses_token(client, user, django_user_model):
    from benchmarks import services

    other = django_user_model.objects.create_user(username="bob", password="pw-pw-pw-pw-1")
    token, _ = services.token_create(user=other, name="bob's")
    client.force_login(user)
    assert client.post(f"/benchmarks/tokens/{token.pk}/revoke/").status_code == 404
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None


def test_the_moderation_page_runs_a_bounded_number_of_queries(
    client, staff, gemma, epyc, django_assert_max_num_queries
):
    for i in range(8):
        make_run(user=None, avg_ts=40.0 + i, samples_ts=[])
    client.force_login(staff)
    with django_assert_max_num_queries(6):
        response = client.get("/benchmarks/moderation/")
    assert response.content.decode().count('class="bench-moderate"') == 8
