"""Issue #12, defect 8: without Redis the limits still hold across workers, counted in the one database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import override_settings

from benchmarks import services
from benchmarks.models import RateCount
from tests.benchmarks.conftest import run_data

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
@override_settings(RIGFIT_BENCH_RATE_STORE="database", RIGFIT_BENCH_RATE_TOKEN=(2, 3600))
def test_the_database_store_counts_what_no_process_cache_holds(client, gemma, epyc, token):
    def post(i: int) -> int:
        cache.clear()  # as if each request reached another worker, with its own memory
        body = json.dumps(run_data(avg_ts=50.0 + i / 10, samples_ts=[]))
        auth = f"Bearer {token[1]}"
        return client.post(
            "/api/benchmarks", body, content_type="application/json", HTTP_AUTHORIZATION=auth
        ).status_code

    assert [post(i) for i in range(3)] == [201, 201, 429]
    assert sum(RateCount.objects.filter(key__contains=":user:").values_list("count", flat=True)) == 2


@pytest.mark.django_db
@override_settings(RIGFIT_BENCH_RATE_STORE="database")
def test_the_database_store_slides_and_refunds_like_the_cache():
    services.check_rate(scope="t", key="k", limit=(1, 60), now=120.0)
    with pytest.raises(services.RateLimited):
        services.check_rate(scope="t", key="k", limit=(1, 60), now=150.0)
    with pytest.raises(services.RateLimited):
        services.check_rate(scope="t", key="k", limit=(1, 60), now=181.0)  # the previous window still weighs
    assert RateCount.objects.get(key__endswith=":3").count == 0  # the refused request was refunded


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor == "sqlite", reason="concurrent writers need PostgreSQL (see test_parallel.py)")
@override_settings(RIGFIT_BENCH_RATE_STORE="database")
def test_concurrent_charges_never_pass_the_limit():
    admitted: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(20)

    def worker() -> None:
        from django.db import connections

        try:
            barrier.wait(timeout=10)
            services.check_rate(scope="race", key="one-client", limit=(10, 3600), now=1000.0)
            outcome = True
        except services.RateLimited:
            outcome = False
        finally:
            connections.close_all()
        with lock:
            admitted.append(outcome)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(admitted) == [False] * 10 + [True] * 10


@pytest.mark.parametrize(("redis", "store"), [("", "database"), ("redis://127.0.0.1:6379/0", "cache")])
def test_production_without_redis_counts_in_the_database(tmp_path, redis, store):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RIGFIT_", "DJANGO_"))}
    env |= {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "RIGFIT_PRODUCTION": "1",
        "DJANGO_SECRET_KEY": "s" * 60,
        "RIGFIT_VAR_DIR": str(tmp_path),
        "RIGFIT_REDIS_URL": redis,
    }
    code = "import django; django.setup(); from django.conf import settings; print(settings.RIGFIT_BENCH_RATE_STORE)"
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == store
