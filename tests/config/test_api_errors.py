"""Issue #12, defects 2 and 10: every API error is JSON in one shape, {"message": ...}, 500s included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from django.db import OperationalError

from tests.inference.conftest import make_tiny_engine, tiny_parts  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def test_an_api_500_is_json_and_logged(client, catalog, caplog):
    with mock.patch("django.db.backends.utils.CursorWrapper.execute", side_effect=OperationalError("db gone")):
        response = client.get("/api/models")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"message": "Internal server error."}
    assert any(record.levelname == "ERROR" and record.exc_info for record in caplog.records)


def _error_schemas(spec: dict) -> list[tuple[str, str, dict]]:
    def resolve(schema: dict) -> dict:
        ref = schema.get("$ref")
        return resolve(spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]) if ref else schema

    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for code, response in operation.get("responses", {}).items():
                if int(code) == 414:  # gunicorn's answer to an over-long request line, before the API: no JSON
                    assert "content" not in response, (path, method)
                elif int(code) >= 400:
                    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
                    found.append((f"{method.upper()} {path}", code, resolve(schema)))
    return found


def test_every_declared_api_error_has_the_one_message_shape(client):
    errors = _error_schemas(client.get("/api/openapi.json").json())
    assert any(where == "POST /api/demo/generate" for where, _code, _schema in errors)
    for where, code, schema in errors:
        assert "message" in schema.get("properties", {}), (where, code, schema)
        assert "detail" not in schema.get("properties", {}), (where, code)


def test_a_body_over_2_mib_is_a_json_413_on_the_api(client):
    body = '{"output": "' + "x" * (3 * 1024 * 1024) + '"}'
    response = client.post("/api/benchmarks/llama-bench", body, content_type="application/json")
    assert response.status_code == 413
    assert response["Content-Type"].startswith("application/json")
    assert "larger than 2048 KiB" in response.json()["message"]


def test_demo_generate_answers_errors_in_the_same_shape(client, make_tiny_engine):  # noqa: F811
    engine = make_tiny_engine(max_new_tokens=8, queue_timeout_s=0.05, max_queue=1)
    post = lambda p: client.post("/api/demo/generate", json.dumps(p), content_type="application/json")  # noqa: E731
    over_cap = post({"prompt": "x", "max_new_tokens": 9})
    assert over_cap.status_code == 422 and "max_new_tokens" in over_cap.json()["message"]
    invalid = post({"prompt": ""})
    assert invalid.status_code == 422 and invalid.json()["message"] == "Invalid input."
    from inference.views import demo_gate

    holder = demo_gate(engine).admit("198.51.100.7")  # another visitor's run holds the only slot
    engine.slots.enqueue()  # and another waits for it: the queue of one is full
    try:
        busy = post({"prompt": "x", "max_new_tokens": 2})
    finally:
        engine.slots.dequeue()
        holder.release()
    assert busy.status_code == 429 and set(busy.json()) == {"message"}


def _django(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh process with these environment variables (settings are read once, at start-up)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RIGFIT_", "DJANGO_"))}
    full = {**base, "DJANGO_SETTINGS_MODULE": "config.settings", **env}
    script = "import django; django.setup()\n" + code
    return subprocess.run(
        [sys.executable, "-c", script], env=full, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_rigfit_var_dir_moves_the_model_cache(tmp_path):
    done = _django(
        "from inference.conf import load_settings; print(load_settings().cache_dir)", RIGFIT_VAR_DIR=str(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "models")


PRODUCTION = {"RIGFIT_PRODUCTION": "1", "DJANGO_SECRET_KEY": "k" * 30 + "-production-test-" + "q" * 30}
PROBE = """
from django.test import Client
client = Client()
https = {"HTTP_X_FORWARDED_PROTO": "https"}
for path, headers in [("/healthz", {}), ("/api/openapi.json", {}), ("/api/openapi.json", https)]:
    print(path, client.get(path, **headers).status_code)
"""


def test_healthz_answers_plain_http_in_production_and_the_proxy_header_is_not_believed(tmp_path):
    done = _django(PROBE, RIGFIT_VAR_DIR=str(tmp_path), **PRODUCTION)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["/healthz 200", "/api/openapi.json 301", "/api/openapi.json 301"]


def test_the_proxy_header_is_believed_from_a_trusted_proxy(tmp_path):
    # The test client's REMOTE_ADDR is 127.0.0.1.
    done = _django(PROBE, RIGFIT_VAR_DIR=str(tmp_path), RIGFIT_TRUSTED_PROXIES="127.0.0.1", **PRODUCTION)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["/healthz 200", "/api/openapi.json 301", "/api/openapi.json 200"]


def test_a_bad_trusted_proxy_fails_at_start_up(tmp_path):
    done = _django("", RIGFIT_VAR_DIR=str(tmp_path), RIGFIT_TRUSTED_PROXIES="not-an-address")
    assert done.returncode != 0 and "RIGFIT_TRUSTED_PROXIES" in done.stderr


def test_check_deploy_stays_clean_in_production(tmp_path):
    env = {**PRODUCTION, "RIGFIT_VAR_DIR": str(tmp_path), "DJANGO_ALLOWED_HOSTS": "rigfit.example"}
    done = _django("from django.core.management import call_command; call_command('check', deploy=True)", **env)
    assert done.returncode == 0, done.stderr
    assert "no issues" in done.stdout + done.stderr
