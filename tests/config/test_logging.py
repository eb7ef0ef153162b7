"""Issue #12, defect 11: 500s reported as structured logs (and to Sentry where a DSN is set), not bare stderr text."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from django.db import OperationalError

from config.logs import JsonFormatter

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_an_api_500_is_one_json_line_with_path_status_and_traceback(client):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        with mock.patch("django.db.backends.utils.CursorWrapper.execute", side_effect=OperationalError("db gone")):
            assert client.get("/api/models").status_code == 500
    finally:
        logger.removeHandler(handler)
    [line] = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert (entry["level"], entry["status"], entry["method"], entry["path"]) == ("ERROR", 500, "GET", "/api/models")
    assert "OperationalError: db gone" in entry["exception"]


def _start(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RIGFIT_", "DJANGO_", "SENTRY_"))}
    full = {**base, "DJANGO_SETTINGS_MODULE": "config.settings", **env}
    script = "import django; django.setup()\n" + code
    return subprocess.run(
        [sys.executable, "-c", script], env=full, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_rigfit_log_format_json_writes_json_lines(tmp_path):
    done = _start(
        "import logging; logging.getLogger('x').error('boom')", RIGFIT_VAR_DIR=str(tmp_path), RIGFIT_LOG_FORMAT="json"
    )
    assert done.returncode == 0, done.stderr
    entry = json.loads(done.stderr.strip().splitlines()[-1])
    assert (entry["level"], entry["logger"], entry["message"]) == ("ERROR", "x", "boom")


def test_a_bad_log_format_fails_at_start_up(tmp_path):
    done = _start("", RIGFIT_VAR_DIR=str(tmp_path), RIGFIT_LOG_FORMAT="yaml")
    assert done.returncode != 0 and "RIGFIT_LOG_FORMAT" in done.stderr


def test_a_sentry_dsn_turns_on_error_reporting(tmp_path):
    pytest.importorskip("sentry_sdk")
    code = "import sentry_sdk; c = sentry_sdk.get_client(); print(c.is_active(), c.options['send_default_pii'])"
    # Nothing listens on port 9: init does not connect; events would be dropped.
    done = _start(code, RIGFIT_VAR_DIR=str(tmp_path), SENTRY_DSN="http://public@127.0.0.1:9/1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]
    without = _start("import sentry_sdk; print(sentry_sdk.get_client().is_active())", RIGFIT_VAR_DIR=str(tmp_path))
    assert without.stdout.split() == ["False"]
