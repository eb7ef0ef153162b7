"""Through a real HTTP server on loopback (uvicorn, the ASGI server behind `make serve-prod`'s gunicorn workers)."""

from __future__ import annotations

import time

import httpx
import pytest

from inference.slots import issue_ticket


def _wait_for(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.slow
def test_it_streams_unbuffered_under_asgi_and_cancels_on_disconnect(live_asgi_url, make_tiny_engine):
    engine = make_tiny_engine(max_new_tokens=3000, max_wall_s=60.0)
    ticket = issue_ticket({"prompt": "hi", "temperature": 0.0, "top_p": 1.0, "max_new_tokens": 3000})
    url = f"{live_asgi_url}/demo/stream/"
    with httpx.Client(timeout=30) as client, client.stream("GET", url, params={"t": ticket}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        seen = ""
        chunks = response.iter_text()
        for chunk in chunks:
            seen += chunk
            if seen.count("event: token") >= 3:
                # Tokens arrived while the generation was still running: the body is not buffered. Checked before
                # leaving the loop: dropping the iterator closes httpx's connection, which cancels the generation.
                assert engine.last_metrics is None
                assert engine.slots.running == 1
                break
        assert seen.count("event: token") >= 3
        chunks.close()
    # Leaving the block closed the connection: the server cancels the generation and frees the slot.
    assert _wait_for(lambda: engine.last_metrics is not None and engine.slots.running == 0)
    assert engine.last_metrics.stop_reason == "cancelled"
    assert engine.last_metrics.tokens_generated < 3000


@pytest.mark.slow
def test_it_ends_the_stream_with_done_under_asgi(live_asgi_url, make_tiny_engine):
    make_tiny_engine(max_new_tokens=10)
    ticket = issue_ticket({"prompt": "hi", "temperature": 0.0, "top_p": 1.0, "max_new_tokens": 5})
    response = httpx.get(f"{live_asgi_url}/demo/stream/", params={"t": ticket}, timeout=30)
    body = response.text
    assert body.count("event: token") == 5
    assert body.rstrip().rsplit("event: ", 1)[1].startswith("done")
