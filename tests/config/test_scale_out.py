"""Issue #12 (scale-out) and #14 item 4: two gunicorn instances (config/gunicorn.py, 2 gthread workers each) on one
PostgreSQL database and one Redis, as two hosts behind a proxy. The submission and sign-in limits hold across
all four worker processes: the counts live in Redis, not in any process.

Skipped where PostgreSQL or Redis does not answer; with CI=true a missing Redis fails (tests/scale_out.py).
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.scale_out import cpu_run_payload, gunicorn_instances, require_postgres_and_redis, shared_site

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("scale-out")]

TOKEN_LIMIT = 5  # runs per user per hour (RIGFIT_BENCH_RATE_TOKEN)
LOGIN_LIMIT = 3  # failed sign-ins per address and per username per 15 minutes (RIGFIT_LOGIN_RATE)

SETUP = """
from benchmarks import services
from catalog.models import HardwareKind
from django.contrib.auth import get_user_model
from tests.factories import GEMMA3_270M_SHAPE, make_hardware, make_model, make_quantization

model = make_model(name="Gemma 3 270M", slug="gemma-3-270m", family="gemma3", publisher="Google", **GEMMA3_270M_SHAPE)
make_quantization(model, name="Q4_K_M", bits_per_weight=None, file_bytes=253_113_024,
                  file_name="gemma-3-270m-q4_k_m.gguf")
make_hardware(name="Test EPYC", slug="test-epyc", vendor="AMD", kind=HardwareKind.CPU, bandwidth_gbps=51.2,
              memory_bytes=32 * 1024**3, fp16_tflops=None, matrix_tflops=0.384)
user = get_user_model().objects.create_user(username="alice", password="s3cret-pass-42")
print(services.token_create(user=user, name="laptop")[1])
"""

COUNT_RUNS = """
from benchmarks.models import BenchmarkRun
print(BenchmarkRun.objects.count())
"""


def llama_bench(speeds: list[float]) -> dict:
    records = [{"model_filename": "gemma-3-270m-q4_k_m.gguf", "n_prompt": 0, "n_gen": 128, "avg_ts": s} for s in speeds]
    return {"output": json.dumps(records), "hardware": "test-epyc"}


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory):
    require_postgres_and_redis()
    tmp = tmp_path_factory.mktemp("scale-out")
    settings = {"RIGFIT_BENCH_RATE_TOKEN": TOKEN_LIMIT, "RIGFIT_BENCH_RATE_IP": 100, "RIGFIT_LOGIN_RATE": LOGIN_LIMIT}
    with shared_site(tmp, label="scaleout", **settings) as site:
        raw_token = site.python(SETUP).strip()
        with gunicorn_instances(site.env, count=2, log_dir=tmp, workers=2, threads=4) as servers:
            yield site, servers, raw_token


def test_it_counts_one_users_runs_across_both_hosts(two_hosts):
    site, (a, b), raw_token = two_hosts
    auth = {"Authorization": f"Bearer {raw_token}"}
    with httpx.Client(headers=auth, timeout=30) as client:
        # 3 runs on host A; 3 more on host B would make 6 > 5: refused whole, nothing of it stored.
        first = client.post(f"{a.url}/api/benchmarks/llama-bench", json=llama_bench([40.0, 41.0, 42.0]))
        refused = client.post(f"{b.url}/api/benchmarks/llama-bench", json=llama_bench([43.0, 44.0, 45.0]))
        # 2 single runs fill the limit (3 + 2 = 5), alternating hosts; the sixth run is refused on either host.
        singles = [
            client.post(f"{url}/api/benchmarks", json=cpu_run_payload(50.0 + i)) for i, url in enumerate([b.url, a.url])
        ]
        over = [
            client.post(f"{url}/api/benchmarks", json=cpu_run_payload(60.0 + i)) for i, url in enumerate([a.url, b.url])
        ]
    assert first.status_code == 201, first.text
    assert len(first.json()["stored"]) == 3
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    assert [r.status_code for r in singles] == [201, 201], [r.text for r in singles]
    assert [r.status_code for r in over] == [429, 429], [r.text for r in over]
    assert int(site.python(COUNT_RUNS)) == TOKEN_LIMIT  # 3 + 2 stored; with per-process counts it would be 5 per worker


def test_it_counts_failed_sign_ins_across_both_hosts(two_hosts):
    _site, (a, b), _token = two_hosts
    statuses = []
    for url in [a.url, b.url, a.url, b.url]:  # LOGIN_LIMIT failures admitted in all, whichever host took them
        with httpx.Client(timeout=30) as client:
            page = client.get(f"{url}/accounts/login/")
            csrf = page.cookies["csrftoken"]
            response = client.post(
                f"{url}/accounts/login/",
                data={"username": "alice", "password": "wrong", "csrfmiddlewaretoken": csrf},
                headers={"Referer": f"{url}/accounts/login/"},
            )
            statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 429]


def test_it_stores_one_of_the_same_run_sent_to_both_hosts(two_hosts):
    site, (a, b), _token = two_hosts
    # A second user, so the first test's spent limit does not refuse these.
    raw = site.python(
        """
        from benchmarks import services
        from django.contrib.auth import get_user_model
        user = get_user_model().objects.create_user(username="bob", password="s3cret-pass-43")
        print(services.token_create(user=user, name="desk")[1])
        """
    ).strip()
    with httpx.Client(headers={"Authorization": f"Bearer {raw}"}, timeout=30) as client:
        statuses = sorted(
            client.post(f"{url}/api/benchmarks", json=cpu_run_payload(33.3)).status_code for url in (a.url, b.url)
        )
    assert statuses == [201, 409]
