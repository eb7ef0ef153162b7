"""Issue #12, defect 1: a test_time outside 2023 .. now is refused everywhere, and the database holds no such row.

On PostgreSQL "0001-01-01T00:00:00+14:00" was stored as a BC timestamp that psycopg cannot read back; every page
listing the run then answered 500. Run these on PostgreSQL as well:
DATABASE_URL=postgres://postgres@127.0.0.1:5432/test pytest tests/benchmarks/test_dates.py
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from benchmarks import services
from benchmarks.models import BenchmarkRun, ModerationDecision, Status
from tests.benchmarks.conftest import make_run, read_fixture, run_data

BC_TIME = "0001-01-01T00:00:00+14:00"
BAD_TIMES = [
    BC_TIME,
    "2022-12-31T23:59:59Z",
    "9999-12-31T23:59:59Z",
    (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
]


def api_post(client, data, raw_token, url="/api/benchmarks"):
    return client.post(url, json.dumps(data), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw_token}")


# Fixed ids: the "an hour from now" value differs between xdist workers, which must collect the same test names.
BAD_TIME_IDS = ["bc", "before-2023", "year-9999", "an-hour-ahead"]


@pytest.mark.django_db
@pytest.mark.parametrize("when", BAD_TIMES, ids=BAD_TIME_IDS)
def test_it_refuses_a_test_time_out_of_range_through_the_api(client, gemma, epyc, token, when):
    response = api_post(client, run_data(test_time=when), token[1])
    assert response.status_code == 422, response.content
    assert "test_time" in {err["loc"][-1] for err in response.json()["errors"]}
    assert BenchmarkRun.objects.count() == 0


@pytest.mark.django_db
def test_it_keeps_a_test_time_within_range(client, gemma, epyc, token):
    response = api_post(client, run_data(test_time="2023-01-01T00:00:00Z"), token[1])
    assert response.status_code == 201, response.content
    assert BenchmarkRun.objects.get().test_time == datetime(2023, 1, 1, tzinfo=UTC)


@pytest.mark.django_db
def test_it_refuses_a_bc_test_time_on_the_web_form(client, gemma, epyc):
    data = run_data(test_time=BC_TIME)
    data["samples_ts"] = ", ".join(str(v) for v in data["samples_ts"])
    response = client.post("/benchmarks/submit/", data)
    assert response.status_code == 422
    assert "before 2023-01-01" in response.content.decode()
    assert BenchmarkRun.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("fixture", ["gemma3-270m-q4_k_m-cpu.json", "gemma3-270m-q4_k_m-cpu.jsonl"])
def test_it_refuses_llama_bench_output_with_a_bc_test_time(client, gemma, epyc, token, fixture):
    text = read_fixture(fixture).replace('"2026-11-24T14:', '"0001-01-01T00:').replace(":47Z", ":47+14:00")
    response = api_post(client, {"output": text, "hardware": "test-epyc"}, token[1], "/api/benchmarks/llama-bench")
    assert response.status_code == 422, response.content
    assert "test_time" in response.content.decode()
    assert BenchmarkRun.objects.count() == 0


@pytest.mark.django_db
def test_the_seed_loader_refuses_a_test_time_out_of_range(gemma, epyc, tmp_path):
    seed = tmp_path / "runs.toml"
    seed.write_text(
        "[[runs]]\n"
        'model_slug = "gemma-3-270m"\nquant = "Q4_K_M"\nhardware = "test-epyc"\nruntime = "llama.cpp"\n'
        'backend = "cpu"\nsource_url = "https://example.org/run"\ntg128 = 50.0\n'
        'test_time = "0001-01-01T00:00:00+14:00"\n'
    )
    with pytest.raises(CommandError, match="test_time"):
        call_command("load_benchmark_seed", file=seed)
    assert BenchmarkRun.objects.count() == 0


@pytest.mark.django_db
def test_the_database_refuses_a_bc_test_time_written_around_the_forms(gemma, epyc):
    run = make_run()
    table = BenchmarkRun._meta.db_table
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET test_time = %s WHERE id = %s", [_raw_bad_time(), run.pk])


def _raw_bad_time() -> str:
    # PostgreSQL parses the offset and stores 0001-12-31 BC; SQLite stores text as Django would write it.
    return BC_TIME if connection.vendor == "postgresql" else "0001-01-01 00:00:00"


@pytest.mark.django_db(transaction=True)
def test_the_migration_repairs_a_bad_row_and_every_page_reads_again(client, gemma, epyc, user):
    executor = MigrationExecutor(connection)
    executor.migrate([("benchmarks", "0001_initial")])
    try:
        run = make_run(user=user)
        pending = make_run(avg_ts=51.0, samples_ts=[50.0, 51.0, 52.0])  # anonymous: pending
        table = BenchmarkRun._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET test_time = %s", [_raw_bad_time()])
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes("benchmarks"))
    run.refresh_from_db()
    pending.refresh_from_db()
    assert (run.test_time, run.status) == (None, Status.FLAGGED)
    assert (pending.test_time, pending.status) == (None, Status.PENDING)
    assert "test_time was outside" in run.status_reason
    assert ModerationDecision.objects.filter(run=run, to_status=Status.FLAGGED, moderator=None).exists()
    moderator = type(user).objects.create_user(username="mod", password="x")
    moderator.groups.add(services.moderators_group())
    client.force_login(moderator)
    for url in [
        "/benchmarks/",
        "/api/benchmarks",
        f"/api/benchmarks/{run.pk}",
        run.get_absolute_url(),
        "/benchmarks/export.csv",
        "/benchmarks/moderation/",
        "/benchmarks/accuracy/",
        "/benchmarks/plots/by-hardware.svg",
        "/benchmarks/plots/bandwidth.svg?model=gemma-3-270m",
        "/models/gemma-3-270m/",
        "/hardware/test-epyc/",
    ]:
        assert client.get(url).status_code == 200, url
