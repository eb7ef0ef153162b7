from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from benchmarks.models import BenchmarkRun, ModerationDecision, Status
from tests.benchmarks.conftest import make_run, read_fixture, run_data

pytestmark = pytest.mark.django_db
URL = "/api/benchmarks"


def post(client, data, raw_token=None, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw_token}"} if raw_token else {}
    return client.post(URL, json.dumps(data), content_type="application/json", **headers, **extra)


def test_it_stores_a_run_sent_with_a_token(client, gemma, epyc, token):
    response = post(client, run_data(), token[1])
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "accepted"
    assert body["roofline_tps"] > 50
    run = BenchmarkRun.objects.get(pk=body["id"])
    assert run.channel == "api" and run.submitter == token[0].user
    assert (run.hardware, run.quantization.name, run.decode_tps, run.test) == (epyc, "Q4_K_M", 50.0, "tg")
    assert ModerationDecision.objects.get(run=run).to_status == "accepted"


def test_it_refuses_a_missing_or_revoked_token(client, gemma, epyc, token):
    assert post(client, run_data()).status_code == 401
    assert post(client, run_data(), "rfb_not-a-token").status_code == 401
    token[0].revoked_at = datetime.now(UTC)
    token[0].save()
    assert post(client, run_data(), token[1]).status_code == 401
    assert BenchmarkRun.objects.count() == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"avg_ts": -3.0}, "avg_ts"),
        ({"avg_ts": 0}, "avg_ts"),
        ({"avg_ts": float("inf")}, "avg_ts"),
        ({"avg_ts": float("nan")}, "avg_ts"),
        ({"stddev_ts": -1.0}, "stddev_ts"),
        ({"samples_ts": [10.0, 11.0, 12.0]}, "samples_ts"),  # mean 11, not 50
        ({"samples_ts": [40.0, 50.0, 60.0], "stddev_ts": 1.0}, "stddev_ts"),  # stdev 10, not 1
        ({"samples_ts": [49.0, 50.0, -51.0]}, "samples_ts"),
        ({"samples_ns": [1, 2]}, "samples_ns"),
        ({"n_prompt": 0, "n_gen": 0}, "n_gen"),
        ({"test_time": (datetime.now(UTC) + timedelta(days=2)).isoformat()}, "test_time"),
        ({"model_slug": "no-such-model"}, "model_slug"),
        ({"runtime": "winamp"}, "runtime"),
        ({"backend": "abacus"}, "backend"),
        ({"hardware": "   "}, "hardware"),
    ],
)
def test_it_answers_422_with_the_field_in_error(client, gemma, epyc, token, overrides, field):
    response = post(client, run_data(**overrides), token[1])
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["message"] == "Invalid input."
    assert field in {err["loc"][-1] for err in body["errors"]}
    assert BenchmarkRun.objects.count() == 0


def test_it_answers_422_for_a_wrong_type(client, gemma, epyc, token):
    response = post(client, run_data(avg_ts="fast"), token[1])
    assert response.status_code == 422
    assert any("avg_ts" in err["loc"] for err in response.json()["errors"])


def test_it_answers_409_for_the_same_payload_and_stores_it_once(client, gemma, epyc, token):
    first = post(client, run_data(), token[1])
    second = post(client, run_data(), token[1])
    assert (first.status_code, second.status_code) == (201, 409)
    assert second.json()["id"] == first.json()["id"]
    assert BenchmarkRun.objects.count() == 1


def test_it_answers_413_for_a_huge_body(client, gemma, epyc, token):
    response = post(client, run_data(notes="x" * 70_000), token[1])
    assert response.status_code == 413


@override_settings(RIGFIT_BENCH_RATE_TOKEN=(2, 3600), RIGFIT_BENCH_RATE_IP=(100, 3600))
def test_it_rate_limits_per_token(client, gemma, epyc, token):
    codes = [post(client, run_data(avg_ts=50.0 + i / 10, samples_ts=[]), token[1]).status_code for i in range(3)]
    assert codes == [201, 201, 429]
    response = post(client, run_data(avg_ts=60.0, samples_ts=[]), token[1])
    assert response.status_code == 429
    # The sliding estimate keeps the two early runs in the count until they fade from the previous window: at most
    # two windows after the current one began (tests/benchmarks/test_client_ip.py pins the exact values).
    assert 1 <= int(response["Retry-After"]) <= 2 * 3600


@override_settings(RIGFIT_BENCH_RATE_IP=(2, 60), RIGFIT_BENCH_RATE_TOKEN=(100, 60))
def test_a_spoofed_forwarded_header_does_not_dodge_the_ip_limit(client, gemma, epyc, token):
    codes = [
        post(
            client, run_data(avg_ts=50.0 + i / 10, samples_ts=[]), token[1], HTTP_X_FORWARDED_FOR=f"10.0.0.{i}"
        ).status_code
        for i in range(3)
    ]
    assert codes == [201, 201, 429]


def test_it_lists_accepted_runs_with_filters_and_pages(client, gemma, epyc, gpu, user):
    for i in range(3):
        make_run(user=user, avg_ts=50.0 + i, samples_ts=[])
    make_run(user=user, hardware="test-gpu-1008", backend="cuda", avg_ts=400.0, samples_ts=[])
    make_run(user=None, avg_ts=47.0, samples_ts=[])  # anonymous: pending, not listed
    body = client.get(URL, {"hardware": "test-epyc", "page_size": 2}).json()
    assert body["count"] == 3 and len(body["items"]) == 2 and body["page"] == 1
    page2 = client.get(URL, {"hardware": "test-epyc", "page_size": 2, "page": 2}).json()
    assert len(page2["items"]) == 1
    assert {i["avg_ts"] for i in body["items"] + page2["items"]} == {50.0, 51.0, 52.0}
    assert client.get(URL, {"backend": "cuda"}).json()["count"] == 1
    assert client.get(URL, {"page": 0}).status_code == 422


def test_it_answers_404_for_an_unknown_run(client, db):
    assert client.get(f"{URL}/999999").status_code == 404


def test_it_documents_the_endpoints_in_openapi(client, db):
    schema = client.get("/api/openapi.json").json()
    assert "post" in schema["paths"]["/api/benchmarks"]
    assert "/api/benchmarks/llama-bench" in schema["paths"]


def test_it_stores_every_test_of_real_llama_bench_output(client, gemma, epyc, token):
    payload = {"output": read_fixture("gemma3-270m-q4_k_m-cpu.json"), "hardware": "AMD EPYC test box"}
    response = client.post(
        f"{URL}/llama-bench",
        json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token[1]}",
    )
    assert response.status_code == 201, response.content
    runs = BenchmarkRun.objects.order_by("n_gen")
    assert [(r.test, r.model.slug, r.quant_name, r.hardware_id) for r in runs] == [
        ("pp", "gemma-3-270m", "Q4_K_M", epyc.pk),
        ("tg", "gemma-3-270m", "Q4_K_M", epyc.pk),
    ]
    assert runs[0].samples_ts == [196.325, 194.533, 107.384] and runs[0].build_commit == "0c1e570"
    again = client.post(
        f"{URL}/llama-bench",
        json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token[1]}",
    )
    assert again.status_code == 409
    assert BenchmarkRun.objects.count() == 2


def test_it_answers_422_for_output_it_cannot_read(client, gemma, epyc, token):
    payload = {"output": "llama-bench: error: model not found", "hardware": "test-epyc"}
    response = client.post(
        f"{URL}/llama-bench",
        json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token[1]}",
    )
    assert response.status_code == 422
    assert "not valid JSON" in response.json()["errors"][0]["msg"]


def test_anonymous_status_is_pending_not_accepted(gemma, epyc):
    run = make_run(user=None)
    assert run.status == Status.PENDING and "Anonymous" in run.status_reason


def test_the_list_runs_a_bounded_number_of_queries(client, gemma, epyc, user, django_assert_max_num_queries):
    for i in range(12):
        make_run(user=user, avg_ts=50.0 + i / 10, samples_ts=[])
    with django_assert_max_num_queries(2):
        body = client.get(URL, {"page_size": 10}).json()
    assert len(body["items"]) == 10 and body["count"] == 12


def test_a_command_line_tool_says_so(client, gemma, epyc, token):
    response = post(client, run_data(channel="cli"), token[1])
    assert response.status_code == 201
    assert BenchmarkRun.objects.get().channel == "cli"
    assert post(client, run_data(avg_ts=51.0, samples_ts=[], channel="fax"), token[1]).status_code == 422


@pytest.mark.parametrize(
    "overrides",
    [
        {"quant": "XQ9", "avg_ts": 999999},
        {"n_prompt": 512, "n_gen": 0, "avg_ts": 999999},
        {"n_prompt": 512, "n_gen": 128, "avg_ts": 999999},
    ],
)
def test_junk_sent_with_a_token_is_not_accepted(client, gemma, epyc, token, overrides):
    # Issue #12, defect 3: each of these was stored as accepted, at the top of the leaderboard.
    response = post(client, run_data(samples_ts=[], stddev_ts=0, **overrides), token[1])
    assert response.status_code == 201, response.content
    assert response.json()["status"] in ("pending", "flagged")
    assert BenchmarkRun.objects.accepted().count() == 0
