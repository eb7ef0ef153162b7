"""Issue #12, defect 2 and "Done means": schemathesis against a live server, every API operation, with 0 server
errors, 0 undocumented status codes, 0 responses that break their schema and 0 undocumented content types.

The server is the production line (gunicorn, config/gunicorn.py) on a scratch database seeded with the test catalog
and a contributor's API token (so the authenticated POSTs reach their views): PostgreSQL when the suite runs on it
(DATABASE_URL=postgres://...; several 500s of the review were PostgreSQL's alone), SQLite otherwise. The demo runs
the tiny engine (inference.tiny's random 6-layer Gemma 3 GGUF), so its generate operation is exercised for real.

Bounded: SCHEMATHESIS_EXAMPLES generated cases per operation and phase, a fixed seed (the same cases every run;
another seed finds other cases: `SCHEMATHESIS_SEED=7 pytest tests/config/test_schemathesis.py`; a longer run:
`SCHEMATHESIS_EXAMPLES=100 SCHEMATHESIS_TIMEOUT_S=1200 pytest ...`).
"""

from __future__ import annotations

import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.scale_out import BIN, reachable, scratch_database, site_env, start_gunicorn

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("schemathesis")]

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "10"))
SEED = int(os.environ.get("SCHEMATHESIS_SEED", "12"))
TIMEOUT_S = int(os.environ.get("SCHEMATHESIS_TIMEOUT_S", "300"))
CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance"

SEED_DATA = """
from benchmarks import services
from catalog.models import HardwareKind
from django.contrib.auth import get_user_model
from tests.factories import make_catalog, make_hardware

catalog = make_catalog()
make_hardware(name="Test EPYC", slug="test-epyc", vendor="AMD", kind=HardwareKind.CPU, bandwidth_gbps=51.2,
              memory_bytes=32 * 1024**3, fp16_tflops=None, matrix_tflops=0.384)
user = get_user_model().objects.create_user(username="fuzzer", password="s3cret-pass-42")
base = {"model_slug": "gemma-3-270m", "quant": "Q4_K_M", "hardware": "test-epyc", "runtime": "llama.cpp",
        "backend": "cpu", "n_gen": 128, "stddev_ts": 0.5, "n_threads": 2}
for speed in (40.0, 45.0, 50.0):
    services.submit_run(data={**base, "avg_ts": speed}, channel="api", submitter=user)
print(services.token_create(user=user, name="fuzz")[1])
"""


@contextmanager
def _database(tmp: Path):
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        if not reachable("127.0.0.1", 5432):
            pytest.skip("DATABASE_URL names PostgreSQL but nothing answers on 127.0.0.1:5432")
        with scratch_database("schemathesis") as url:
            yield url
    else:
        yield f"sqlite:///{tmp / 'schemathesis.sqlite3'}"


@pytest.fixture(scope="module")
def live_api(tmp_path_factory):
    from tests.scale_out import manage, python

    tmp = tmp_path_factory.mktemp("schemathesis")
    with _database(tmp) as database_url:
        from inference.tiny import write_tiny_gguf

        env = site_env(
            database_url=database_url,
            var_dir=tmp / "var",
            # Every generated POST is a run: limits high enough that none is refused for its rate.
            RIGFIT_BENCH_RATE_TOKEN="1000000",
            RIGFIT_BENCH_RATE_IP="1000000",
            # The demo on the tiny engine (a 6-layer Gemma 3 GGUF with random weights, inference.tiny), loaded at
            # start; a queue long enough that no generated request waits past its timeout.
            RIGFIT_DEMO_MODEL_PATH=write_tiny_gguf(tmp / "tiny-gemma3-Q4_K_M.gguf"),
            RIGFIT_DEMO_WARM_START="1",
            RIGFIT_DEMO_THREADS="1",
            RIGFIT_DEMO_MAX_NEW_TOKENS="64",
            RIGFIT_DEMO_MAX_WALL_S="10",
            RIGFIT_DEMO_RATE="1000000",
            RIGFIT_DEMO_MAX_QUEUE="64",
            RIGFIT_DEMO_QUEUE_TIMEOUT_S="120",
        )
        (tmp / "var").mkdir(exist_ok=True)
        manage(env, "migrate", "--noinput")
        raw_token = python(env, SEED_DATA).strip().splitlines()[-1]
        server = start_gunicorn(env, log_dir=tmp, name="schemathesis", workers=1, threads=4)
        try:
            wait_demo_ready(server.url)
            yield server, raw_token, tmp
        finally:
            server.stop()


def wait_demo_ready(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = httpx.get(f"{url}/api/demo/status", timeout=10).json()["state"]
        if state in ("ready", "error"):
            break
        time.sleep(0.2)
    assert state == "ready", f"the tiny demo engine is {state!r}"


def test_it_answers_every_generated_request_within_its_schema(live_api):
    server, raw_token, tmp = live_api
    command = [
        str(BIN / "st"),
        "run",
        f"{server.url}/api/openapi.json",
        "--header",
        f"Authorization: Bearer {raw_token}",
        "--checks",
        CHECKS,
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "2",
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(tmp / "schemathesis-report"),
    ]
    paths = httpx.get(f"{server.url}/api/openapi.json", timeout=30).json()["paths"]
    operations = sum(len(methods) for methods in paths.values())
    # The cap: far above the run's usual length; a run that reaches it fails rather than hangs CI. The working
    # directory is the test's own, for schemathesis' cache folder.
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=tmp, env={**os.environ, "NO_COLOR": "1"}
    )
    output = done.stdout + done.stderr
    print(*[line for line in output.splitlines() if "generated" in line or "Scenarios" in line], sep="\n")
    assert done.returncode == 0, output[-8000:] + "\n--- server log ---\n" + server.log()[-3000:]
    assert f"Selected: {operations}/{operations}" in output and f"Tested: {operations}" in output, output[-3000:]
