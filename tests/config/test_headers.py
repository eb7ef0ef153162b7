"""Issue #12, defect 11: a Content-Security-Policy on every page; gunicorn workers with a timeout."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def _directives(header: str) -> dict[str, list[str]]:
    parts = [part.strip().split() for part in header.split(";") if part.strip()]
    return {part[0]: part[1:] for part in parts}


@pytest.mark.parametrize(
    "url", ["/", "/models/", "/models/gemma-3-270m/", "/hardware/", "/benchmarks/", "/benchmarks/submit/"]
)
def test_every_page_carries_a_csp_that_runs_no_inline_script(client, catalog, url):
    response = client.get(url)
    assert response.status_code == 200
    policy = _directives(response["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    html = response.content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", html), "an inline script"
    assert not re.search(r"\son[a-z]+=", html), "an inline event handler"


def test_the_api_docs_allow_exactly_their_own_inline_script(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    allowed = _directives(response["Content-Security-Policy"])["script-src"]
    inline = re.findall(r"<script>(.*?)</script>", response.content.decode(), flags=re.DOTALL)
    assert inline
    for script in inline:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in allowed


def test_the_svg_plots_keep_their_own_stricter_policy(client, catalog):
    response = client.get("/benchmarks/plots/by-hardware.svg")
    assert response["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'"


def test_django_csp_is_pinned():
    site = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["site"]
    assert "django-csp==4.0" in site


def test_gunicorn_runs_gthread_workers_with_a_timeout_above_the_longest_generation(monkeypatch):
    monkeypatch.delenv("GUNICORN_TIMEOUT", raising=False)
    monkeypatch.setenv("RIGFIT_DEMO_MAX_WALL_S", "60")
    namespace: dict = {}
    exec((ROOT / "config" / "gunicorn.py").read_text(), namespace)  # gunicorn reads the file the same way
    assert namespace["worker_class"] == "gthread"
    assert namespace["timeout"] == 90 and namespace["graceful_timeout"] <= namespace["timeout"]
    done = subprocess.run(
        [
            Path(sys.executable).parent / "gunicorn",
            "--check-config",
            "-c",
            "config/gunicorn.py",
            "config.wsgi:application",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
