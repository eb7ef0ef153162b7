"""Issue #12, defects 6 and 7: no leak of rejected runs or of other users' run ids; no formulas in the CSV export."""

from __future__ import annotations

import csv
import io
import json

import pytest

from benchmarks import services
from benchmarks.models import BenchmarkRun, Status
from tests.benchmarks.conftest import make_run, run_data

pytestmark = pytest.mark.django_db


def test_a_rejected_run_is_404_in_the_api_as_on_its_page(client, gemma, epyc, user, staff, django_user_model):
    run = make_run(user=user)
    services.moderate(run=run, moderator=staff, decision=Status.REJECTED, reason="Fabricated")
    assert client.get(f"/api/benchmarks/{run.pk}").status_code == 404
    assert client.get(run.get_absolute_url()).status_code == 404
    other = django_user_model.objects.create_user(username="mallory", password="x")
    client.force_login(other)
    assert client.get(f"/api/benchmarks/{run.pk}").status_code == 404
    for allowed in (user, staff):
        client.force_login(allowed)
        assert client.get(f"/api/benchmarks/{run.pk}").json()["status"] == "rejected"


def test_a_409_names_only_the_submitters_own_run(client, gemma, epyc, token, django_user_model):
    own, raw = token
    mine = make_run(user=own.user)
    same = client.post(
        "/api/benchmarks", json.dumps(run_data()), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    assert same.status_code == 409 and same.json()["id"] == mine.pk
    _token, other_raw = services.token_create(user=django_user_model.objects.create_user(username="bob"), name="b")
    other = client.post(
        "/api/benchmarks",
        json.dumps(run_data()),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {other_raw}",
    )
    assert other.status_code == 409 and other.json()["id"] is None
    assert str(mine.pk) not in other.content.decode()


def test_an_anonymous_resubmission_on_the_web_form_names_no_run(client, gemma, epyc, user):
    run = make_run(user=user)
    data = run_data()
    data["samples_ts"] = ", ".join(str(v) for v in data["samples_ts"])
    response = client.post("/benchmarks/submit/", data)
    assert response.status_code == 409
    assert run.get_absolute_url() not in response.content.decode()


@pytest.mark.parametrize("text", ['=HYPERLINK("http://evil","x")', "@SUM(A1:A2)", "+1+1", "-2+3", "\tx", "\rx"])
def test_the_csv_export_neutralises_formulas(client, gemma, epyc, user, text):
    run = make_run(user=user)
    # Written around the form, which strips leading tabs and CRs: the export must not rely on it.
    BenchmarkRun.objects.filter(pk=run.pk).update(
        runtime_version=text, build_commit=text, hardware=None, hardware_name=text
    )
    rows = list(csv.DictReader(io.StringIO(b"".join(client.get("/benchmarks/export.csv").streaming_content).decode())))
    assert [row["runtime_version"] for row in rows] == ["'" + text]
    assert rows[0]["build_commit"] == rows[0]["hardware"] == "'" + text
    assert rows[0]["avg_ts"] == "50.0"  # numbers are left alone
