"""Issue #12, defect 4: limits count runs, not requests; one request carries a bounded number of runs; one
submitter cannot move the outlier baseline."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from benchmarks import outliers, services
from benchmarks.models import BenchmarkRun, Status
from tests.benchmarks.conftest import make_run, read_fixture, run_data

pytestmark = pytest.mark.django_db
BENCH_URL = "/api/benchmarks/llama-bench"


def bench_output(n_tests: int) -> str:
    """llama-bench JSON with `n_tests` distinct tg tests, built from the real fixture's generation record."""
    tg = next(r for r in json.loads(read_fixture("gemma3-270m-q4_k_m-cpu.json")) if r["n_gen"])
    records = []
    for i in range(n_tests):
        speed = 10.0 + i / 100
        records.append({**tg, "avg_ts": speed, "stddev_ts": 0.0, "samples_ts": [speed], "samples_ns": []})
    return json.dumps(records)


def post_bench(client, raw_token, text):
    body = {"output": text, "hardware": "test-epyc"}
    return client.post(
        BENCH_URL, json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw_token}"
    )


@override_settings(RIGFIT_BENCH_RATE_TOKEN=(5, 3600), RIGFIT_BENCH_RATE_IP=(100, 3600))
def test_the_limit_counts_every_test_of_a_llama_bench_output(client, gemma, epyc, token):
    assert post_bench(client, token[1], bench_output(3)).status_code == 201
    refused = post_bench(client, token[1], bench_output(3).replace("10.0", "20.0"))
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert BenchmarkRun.objects.count() == 3  # nothing of the refused request was stored
    too_big = post_bench(client, token[1], bench_output(6))
    assert too_big.status_code == 429 and "holds 6 runs" in too_big.json()["message"]


@override_settings(RIGFIT_BENCH_RATE_TOKEN=(5, 3600), RIGFIT_BENCH_RATE_IP=(100, 3600))
def test_the_limit_is_per_user_not_per_token(client, gemma, epyc, token):
    _other, raw = services.token_create(user=token[0].user, name="second")
    assert post_bench(client, token[1], bench_output(3)).status_code == 201
    assert post_bench(client, raw, bench_output(3).replace("10.0", "20.0")).status_code == 429


@override_settings(RIGFIT_BENCH_MAX_RUNS_PER_REQUEST=10)
def test_one_request_carries_a_bounded_number_of_runs(client, gemma, epyc, token):
    response = post_bench(client, token[1], bench_output(11))
    assert response.status_code == 422
    assert "at most 10 per submission" in response.content.decode()
    assert BenchmarkRun.objects.count() == 0


def test_the_default_cap_is_far_below_the_flood_of_the_review(client, gemma, epyc, token):
    response = post_bench(client, token[1], bench_output(200))  # the review stored all 200
    assert response.status_code == 422
    assert BenchmarkRun.objects.count() == 0


@override_settings(RIGFIT_BENCH_RATE_IP=(3, 3600))
def test_an_anonymous_paste_is_charged_every_test(client, gemma, epyc):
    url = "/benchmarks/submit/llama-bench/"
    assert client.post(url, {"output": bench_output(2), "hardware": "test-epyc"}).status_code == 201
    response = client.post(url, {"output": bench_output(2).replace("10.0", "20.0"), "hardware": "test-epyc"})
    assert response.status_code == 429
    assert BenchmarkRun.objects.count() == 2


def test_one_vote_each_reduces_a_submitter_to_their_median():
    votes = outliers.one_vote_each([(1, 300.0), (1, 301.0), (1, 302.0), (2, 77.0), (None, 78.0), (None, 76.0)])
    assert sorted(votes) == [76.0, 77.0, 78.0, 301.0]


def test_a_flood_from_one_submitter_does_not_move_the_baseline(gemma, gpu, django_user_model):
    # The review: one account flooded a group first, then honest runs were flagged against it (z = +73.7).
    gpu_run = {"hardware": "test-gpu-1008", "backend": "cuda", "samples_ts": []}
    flooder = django_user_model.objects.create_user(username="flood")
    for i in range(40):
        make_run(user=flooder, avg_ts=20.0 + i / 1000, **gpu_run)
    honest = [django_user_model.objects.create_user(username=f"honest{i}") for i in range(5)]
    for i, user in enumerate(honest[:4]):
        assert make_run(user=user, avg_ts=77.0 + i / 2, **gpu_run).status == Status.ACCEPTED
    run, verdict = services.submit_run(data=run_data(avg_ts=77.7, **gpu_run), channel="api", submitter=honest[4])
    assert run.status == Status.ACCEPTED, run.status_reason
    assert verdict.z_score is not None and abs(verdict.z_score) < outliers.THRESHOLD
    assert "among 5 submitters" in " ".join(verdict.checks)


def test_the_api_still_reads_a_single_run_as_one(client, gemma, epyc, token):
    with override_settings(RIGFIT_BENCH_RATE_TOKEN=(2, 3600), RIGFIT_BENCH_RATE_IP=(100, 3600)):
        codes = [
            client.post(
                "/api/benchmarks",
                json.dumps(run_data(avg_ts=50.0 + i / 10, samples_ts=[])),
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {token[1]}",
            ).status_code
            for i in range(3)
        ]
    assert codes == [201, 201, 429]
