"""Issue #12, defect 8: with Redis down, pages render uncached and submissions are refused with a clear 503."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time

import pytest

from benchmarks import services
from benchmarks.models import BenchmarkRun
from tests.benchmarks.conftest import epyc, gemma, run_data, token, user  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _redis_caches(url: str) -> dict:
    options = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
    return {
        "default": {"BACKEND": "config.cache.FailOpenRedisCache", "LOCATION": url, "OPTIONS": options},
        "limits": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url, "OPTIONS": options},
    }


@pytest.fixture
def dead_redis(settings):
    settings.CACHES = _redis_caches(f"redis://127.0.0.1:{_free_port()}/0")  # nothing listens there


def test_pages_and_reads_render_uncached_with_redis_down(client, catalog, dead_redis):
    for url in ["/", "/models/", "/models/gemma-3-270m/", "/hardware/", "/hardware/geforce-rtx-4090/", "/benchmarks/"]:
        assert client.get(url).status_code == 200, url
    assert client.get("/api/fits", {"hardware": "geforce-rtx-4090"}).status_code == 200
    assert client.get("/api/models").status_code == 200


def test_submissions_fail_closed_with_a_json_503_on_the_api(client, gemma, epyc, token, dead_redis):  # noqa: F811
    response = client.post(
        "/api/benchmarks",
        json.dumps(run_data()),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token[1]}",
    )
    assert response.status_code == 503
    assert "rate limiter" in response.json()["message"] and int(response["Retry-After"]) > 0
    assert BenchmarkRun.objects.count() == 0


def test_submissions_fail_closed_with_an_html_503_on_the_form(client, gemma, epyc, dead_redis):  # noqa: F811
    data = run_data()
    data["samples_ts"] = ", ".join(str(v) for v in data["samples_ts"])
    response = client.post("/benchmarks/submit/", data)
    assert response.status_code == 503 and "Submissions paused" in response.content.decode()
    assert BenchmarkRun.objects.count() == 0


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_a_real_redis_counts_then_its_death_pauses_submissions(client, gemma, epyc, token, settings):  # noqa: F811
    port = _free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.1)
        settings.CACHES = _redis_caches(f"redis://127.0.0.1:{port}/0")
        settings.RIGFIT_BENCH_RATE_TOKEN = (2, 3600)

        def post(i: int):
            body = json.dumps(run_data(avg_ts=50.0 + i / 10, samples_ts=[]))
            auth = f"Bearer {token[1]}"
            return client.post("/api/benchmarks", body, content_type="application/json", HTTP_AUTHORIZATION=auth)

        assert [post(i).status_code for i in range(3)] == [201, 201, 429]
        assert client.get("/models/gemma-3-270m/").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert post(3).status_code == 503
    assert client.get("/models/gemma-3-270m/").status_code == 200
    with pytest.raises(services.LimiterUnavailable):
        services.check_rate(scope="t", key="k", limit=(5, 60))
