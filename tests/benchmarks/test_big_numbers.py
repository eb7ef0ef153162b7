"""Issue #12, defect 2: integers at or past 2^63 are field errors (422), not 500s from the database."""

from __future__ import annotations

import json

import pytest

from benchmarks.models import BenchmarkRun
from tests.benchmarks.conftest import read_fixture, run_data

pytestmark = pytest.mark.django_db

HUGE = [2**63, 10**20, 1e20]


def api_post(client, data, raw_token, url="/api/benchmarks"):
    return client.post(url, json.dumps(data), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw_token}")


@pytest.mark.parametrize("field", ["ram_bytes", "model_size", "model_n_params"])
@pytest.mark.parametrize("value", HUGE)
def test_it_answers_422_to_a_huge_integer_through_the_api(client, gemma, epyc, token, field, value):
    response = api_post(client, run_data(**{field: value}), token[1])
    assert response.status_code == 422, response.content
    assert field in {err["loc"][-1] for err in response.json()["errors"]}
    assert BenchmarkRun.objects.count() == 0


def test_it_answers_422_to_huge_nanosecond_samples(client, gemma, epyc, token):
    response = api_post(client, run_data(samples_ns=[2**63, 2**63, 2**63]), token[1])
    assert response.status_code == 422, response.content
    assert BenchmarkRun.objects.count() == 0


@pytest.mark.parametrize("field", ["ram_bytes", "model_size", "model_n_params"])
def test_the_web_form_shows_a_field_error_for_a_huge_integer(client, gemma, epyc, field):
    data = run_data(**{field: "99999999999999999999"})
    data["samples_ts"] = ", ".join(str(v) for v in data["samples_ts"])
    response = client.post("/benchmarks/submit/", data)
    assert response.status_code == 422
    assert f'id="field-{field}"' in response.content.decode()
    assert "Ensure this value is less than or equal to" in response.content.decode()
    assert BenchmarkRun.objects.count() == 0


@pytest.mark.parametrize(("field", "literal"), [("model_size", "1e20"), ("model_n_params", "100000000000000000000")])
def test_llama_bench_output_with_a_huge_integer_is_refused(client, gemma, epyc, token, field, literal):
    records = json.loads(read_fixture("gemma3-270m-q4_k_m-cpu.json"))
    text = json.dumps(records).replace(f'"{field}": {records[0][field]}', f'"{field}": {literal}')
    assert literal in text
    body = {"output": text, "hardware": "test-epyc", "model_slug": "gemma-3-270m", "quant": "Q4_K_M"}
    response = api_post(client, body, token[1], "/api/benchmarks/llama-bench")
    assert response.status_code == 422, response.content
    assert field in response.content.decode()
    assert BenchmarkRun.objects.count() == 0


@pytest.mark.parametrize("url", ["/api/models", "/api/hardware", "/api/benchmarks"])
def test_a_huge_page_number_is_a_json_422(client, catalog, url):
    response = client.get(url, {"page": "1000000000000000000"})
    assert response.status_code == 422
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["errors"][0]["loc"] == ["query", "page"]
    assert client.get(url, {"page": "1000000"}).status_code in (200, 404)
