"""Issue #12, defect 2: no body makes the submission endpoints answer 5xx (a property test over extreme values)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.models import BenchmarkRun
from tests.benchmarks.conftest import run_data

pytestmark = pytest.mark.django_db

EXTREME_INTS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31, 2**53, 2**63 - 1, 2**63, 2**64, 10**20]),
)
EXTREME_FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 1e-320, 1e20, 1e308, 999999.0])
)
TIMES = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),
    st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-02-30T00:00:00Z", "x"]),
)
TEXT = st.text(max_size=300)
INT_FIELDS = ["n_prompt", "n_gen", "n_depth", "n_gpu_layers", "n_threads", "n_batch", "n_ubatch", "n_ctx", "ram_bytes",
              "model_size", "model_n_params"]  # fmt: skip
FLOAT_FIELDS = ["avg_ts", "stddev_ts", "prompt_tps", "ttft_ms", "power_watts"]
TEXT_FIELDS = ["quant", "hardware", "runtime", "backend", "runtime_version", "build_commit", "type_k", "os", "notes"]
FIELD = st.one_of(
    st.tuples(st.sampled_from(INT_FIELDS), st.one_of(EXTREME_INTS, EXTREME_FLOATS, TEXT)),
    st.tuples(st.sampled_from(FLOAT_FIELDS), st.one_of(EXTREME_FLOATS, EXTREME_INTS)),
    st.tuples(st.sampled_from(TEXT_FIELDS), TEXT),
    st.tuples(st.just("test_time"), TIMES),
    st.tuples(st.sampled_from(["samples_ts", "samples_ns"]), st.lists(st.one_of(EXTREME_INTS, EXTREME_FLOATS))),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(FIELD, min_size=1, max_size=4))
def test_no_run_body_answers_5xx(client, gemma, epyc, token, changes):
    data = run_data(samples_ts=[])
    data.update(dict(changes))
    body = json.dumps(data)  # NaN and Infinity go out as JSON's common extension, as a client might send them
    auth = f"Bearer {token[1]}"
    response = client.post("/api/benchmarks", body, content_type="application/json", HTTP_AUTHORIZATION=auth)
    assert response.status_code < 500, (data, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    BenchmarkRun.objects.all().delete()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(FIELD, min_size=1, max_size=4))
def test_no_llama_bench_record_answers_5xx(client, gemma, epyc, token, changes):
    record = {"model_filename": "gemma-3-270m-q4_k_m.gguf", "n_prompt": 0, "n_gen": 128, "avg_ts": 50.0}
    record.update(dict(changes))
    body = json.dumps({"output": json.dumps([record]), "hardware": "test-epyc"})
    auth = f"Bearer {token[1]}"
    response = client.post(
        "/api/benchmarks/llama-bench", body, content_type="application/json", HTTP_AUTHORIZATION=auth
    )
    assert response.status_code < 500, (record, response.content[:300])
    BenchmarkRun.objects.all().delete()
