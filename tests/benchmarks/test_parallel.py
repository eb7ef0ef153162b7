"""Identical submissions racing each other store one row; the others get 409 (Duplicate).

Runs against the configured database with real transactions (transactional_db) and real threads, each thread on
its own connection. It needs PostgreSQL (DATABASE_URL=postgres://postgres@127.0.0.1:5432/test): the SQLite test
database is in memory and shared between threads through SQLite's shared cache, where a second writer gets
SQLITE_LOCKED ("database table is locked") at once instead of waiting (busy_timeout does not apply to shared-cache
table locks), so concurrent writers cannot be exercised there at all.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from benchmarks import services
from benchmarks.models import BenchmarkRun, Channel, ModerationDecision
from tests.benchmarks.conftest import run_data

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor == "sqlite",
        reason="SQLite's shared-cache in-memory test database refuses concurrent writers (SQLITE_LOCKED); run with "
        "DATABASE_URL=postgres://...",
    ),
]
N_THREADS = 6


def _race(target, n: int) -> list[object]:
    barrier = threading.Barrier(n)
    results: list[object] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        from django.db import connections

        try:
            barrier.wait(timeout=10)
            outcome = target(index)
        except Exception as exc:
            outcome = exc
        finally:
            connections.close_all()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_parallel_identical_submissions_store_one_run(gemma, epyc, user):
    def submit(_index: int) -> object:
        run, _ = services.submit_run(data=run_data(), channel=Channel.API, submitter=user)
        return run.pk

    results = _race(submit, N_THREADS)
    stored = [r for r in results if isinstance(r, int)]
    duplicates = [r for r in results if isinstance(r, services.Duplicate)]
    assert len(stored) == 1, results
    assert len(duplicates) == N_THREADS - 1, results
    assert {d.run_id for d in duplicates} == set(stored)
    assert BenchmarkRun.objects.count() == 1
    assert ModerationDecision.objects.count() == 1


def test_parallel_different_submissions_all_land(gemma, epyc, user):
    def submit(index: int) -> object:
        run, _ = services.submit_run(
            data=run_data(avg_ts=50.0 + index / 10, samples_ts=[]), channel=Channel.API, submitter=user
        )
        return run.pk

    results = _race(submit, N_THREADS)
    assert all(isinstance(r, int) for r in results), results
    assert BenchmarkRun.objects.count() == N_THREADS
    assert connection.vendor in {"postgresql", "sqlite"}
