from __future__ import annotations

import csv
import io

import pytest
from django.template import Context, Template

from benchmarks import services
from tests.benchmarks.conftest import make_run

pytestmark = pytest.mark.django_db


def render_section(name: str, **context) -> str:
    return Template(f'{{% include "benchmarks/{name}" %}}').render(Context(context))


def test_the_model_section_invites_the_first_submission(gemma):
    html = render_section("_model_section.html", model=gemma)
    assert "Submit the first run" in html and "/benchmarks/submit/?model_slug=gemma-3-270m" in html


def test_the_model_section_shows_medians_counts_spread_and_the_estimate(
    gemma, epyc, gpu, user, django_assert_max_num_queries
):
    for value in (40.0, 50.0, 60.0):
        make_run(user=user, avg_ts=value, samples_ts=[])
    for value in (300.0, 320.0):
        make_run(user=user, avg_ts=value, samples_ts=[], hardware="test-gpu-1008", backend="cuda")
    with django_assert_max_num_queries(3):
        html = render_section("_model_section.html", model=gemma)
    assert "Test EPYC" in html and "<strong>50.0</strong>" in html and "40.0–60.0" in html
    assert "<strong>310.0</strong>" in html and "estimated" in html
    assert "Submit your run" in html


def test_the_hardware_section_lists_models(gemma, epyc, user, django_assert_max_num_queries):
    assert "Submit the first run" in render_section("_hardware_section.html", hardware=epyc)
    make_run(user=user)
    with django_assert_max_num_queries(3):
        html = render_section("_hardware_section.html", hardware=epyc)
    assert "Gemma 3 270M" in html


def test_the_leaderboard_filters_and_bounds_its_queries(client, gemma, epyc, gpu, user, django_assert_max_num_queries):
    for i in range(5):
        make_run(user=user, avg_ts=40.0 + i, samples_ts=[])
    make_run(user=user, avg_ts=300.0, samples_ts=[], hardware="test-gpu-1008", backend="cuda", runtime="vllm")
    with django_assert_max_num_queries(8):
        response = client.get("/benchmarks/", {"runtime": "vllm"})
    html = response.content.decode()
    assert "300.0" in html and "44.0" not in html
    assert client.get("/benchmarks/", {"backend": "nonsense"}).status_code == 200
    partial = client.get("/benchmarks/", {"model": "gemma-3-270m"}, HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in partial and "44.0" in partial


def test_the_csv_export_has_only_accepted_runs(client, gemma, epyc, user, staff):
    accepted = make_run(user=user, avg_ts=50.0, samples_ts=[])
    pending = make_run(user=None, avg_ts=49.0, samples_ts=[])
    response = client.get("/benchmarks/export.csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["id"], r["model"], r["hardware"], r["avg_ts"], r["test"]) for r in rows] == [
        (str(accepted.pk), "gemma-3-270m", "test-epyc", "50.0", "tg")
    ]
    services.moderate(run=pending, moderator=staff, decision="accepted", reason="ok")
    rows = list(csv.DictReader(io.StringIO(b"".join(client.get("/benchmarks/export.csv").streaming_content).decode())))
    assert len(rows) == 2


def test_the_web_pages_refuse_state_changes_on_get(client, db):
    assert client.get("/benchmarks/submit/llama-bench/").status_code == 405
    assert client.post("/benchmarks/export.csv").status_code == 405
