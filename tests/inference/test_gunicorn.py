"""The production server `make serve-prod` runs (gunicorn, gthread workers, WSGI), on loopback, with the real model."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from inference.slots import issue_ticket

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("inference-real-model")]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def gunicorn_url(real_engine):  # real_engine: the converted-model cache exists, so the worker warm-starts
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "RIGFIT_DEMO_WARM_START": "1", "RIGFIT_DEMO_CACHE_DIR": str(real_engine.settings.cache_dir)}
    # The same server line as the Makefile's serve-prod, with one worker.
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "config.wsgi:application",
        "-k",
        "gthread",
        "--threads",
        "4",
        "-b",
        f"127.0.0.1:{port}",
        "-w",
        "1",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/api/demo/status", timeout=2).json()["state"] == "ready":
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        else:
            pytest.fail("gunicorn did not get the model ready in 120 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_it_streams_tokens_as_they_come_under_the_production_server(gunicorn_url):
    # A counting prompt: the model keeps counting instead of ending early, so the generation is still running when
    # its first token reaches the client, unless the server held the response back until the end.
    ticket = issue_ticket(
        {"prompt": "Count from 1 to 1000: 1, 2, 3, 4, 5,", "temperature": 0.0, "top_p": 1.0, "max_new_tokens": 200}
    )
    with (
        httpx.Client(timeout=60) as client,
        client.stream("GET", f"{gunicorn_url}/demo/stream/", params={"t": ticket}) as response,
    ):
        assert response.status_code == 200
        chunks = response.iter_text()
        body = ""
        for chunk in chunks:
            body += chunk
            if "event: token" in body:
                break
        # The event the code exposes, not how TCP cut the bytes: the first token is here while the generation still
        # holds its slot (a buffered response sends its first byte only after the slot is released).
        during = client.get(f"{gunicorn_url}/api/demo/status").json()
        body += "".join(chunks)
    assert during["running"] == 1, during
    after = httpx.get(f"{gunicorn_url}/api/demo/status", timeout=5).json()
    assert body.count("event: token") == after["last_tokens_generated"] > 1
    text = "".join(
        line.removeprefix("data: ")
        for block in body.split("\n\n")
        if block.startswith("event: token")
        for line in block.split("\n")[1:]
    )
    assert "6" in text  # the tokens' own text: it went on counting
    assert body.rstrip().rsplit("event: ", 1)[1].startswith("done")


def test_it_cancels_the_generation_when_the_client_goes_away(gunicorn_url):
    ticket = issue_ticket(
        # A counting prompt: the model keeps counting instead of ending early, so only the disconnect can stop it.
        {"prompt": "Count from 1 to 1000: 1, 2, 3, 4, 5,", "temperature": 0.0, "top_p": 1.0, "max_new_tokens": 250},
    )
    with (
        httpx.Client(timeout=60) as client,
        client.stream("GET", f"{gunicorn_url}/demo/stream/", params={"t": ticket}) as response,
    ):
        seen = ""
        for chunk in response.iter_text():
            seen += chunk
            if seen.count("event: token") >= 3:
                break
    # The connection is closed: gunicorn closes the response iterator, which cancels the generation.
    deadline = time.monotonic() + 30
    status = {}
    while time.monotonic() < deadline:
        status = httpx.get(f"{gunicorn_url}/api/demo/status", timeout=5).json()
        if status["running"] == 0 and status["last_stop_reason"] is not None:
            break
        time.sleep(0.05)
    assert status["last_stop_reason"] == "cancelled", status
    assert status["last_tokens_generated"] < 250
