"""The demo's limits (issue 12, defect 9): single-use tickets, a per-client rate and one run per client, slots shared
through the limits store, refusals before the stream starts, and a store that is down failing closed."""

from __future__ import annotations

import io
import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse
from PIL import Image

from inference.engine import Metrics
from inference.slots import DemoGate, Slots, TicketRefused, issue_ticket, redeem_ticket
from inference.views import demo_gate

FORM = {"prompt": "hi", "temperature": "0", "top_p": "1", "max_new_tokens": "3"}
# Nothing listens on port 1: every Redis call fails as it does with the server down.
DEAD_REDIS = {
    alias: {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
    }
    for alias in ("default", "limits")
}


def _stream_url(response) -> str:
    return re.search(r'sse-connect="([^"]+)"', response.content.decode()).group(1).replace("&amp;", "&")


def _run(client, url: str):
    response = client.get(url)
    body = b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()
    return response, body


def test_it_streams_a_ticket_once_and_refuses_the_replay(client, tiny_engine, limits_store):
    url = _stream_url(client.post(reverse("inference:generate"), FORM))
    first, body = _run(client, url)
    assert first.status_code == 200 and body.count("event: token") == 3
    tiny_engine.last_metrics = None
    replay, text = _run(client, url)
    assert replay.status_code == 410
    assert "used already" in text
    assert tiny_engine.last_metrics is None  # the replay generated nothing


def test_it_refuses_a_forged_ticket_and_one_without_a_nonce(tiny_engine):
    from django.core import signing

    from inference.slots import SIGNING_SALT

    with pytest.raises(TicketRefused) as forged:
        redeem_ticket("x" + issue_ticket({"prompt": "a"}))
    assert forged.value.status == 400
    with pytest.raises(TicketRefused):  # the old ticket shape (settings only, no nonce) is not accepted
        redeem_ticket(signing.dumps({"prompt": "a"}, salt=SIGNING_SALT))


def test_it_limits_each_client_to_the_configured_rate(client, make_tiny_engine, limits_store):
    make_tiny_engine(rate=2, rate_window_s=600)
    answers = [client.post(reverse("inference:generate"), FORM) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    refused = answers[2]
    assert 1 <= int(refused["Retry-After"]) <= 600
    assert "the 2 demo requests a visitor may make in 10 minutes" in refused.content.decode()
    other = client.post(reverse("inference:generate"), FORM, REMOTE_ADDR="198.51.100.4")
    assert other.status_code == 200  # another visitor has their own count
    # The refused request was not counted: still refused, still exactly at the limit.
    assert client.post(reverse("inference:generate"), FORM).status_code == 429


def test_it_charges_the_api_against_the_same_rate(client, make_tiny_engine):
    make_tiny_engine(rate=1)
    post = lambda: client.post(  # noqa: E731
        "/api/demo/generate", json.dumps({"prompt": "x", "max_new_tokens": 2}), content_type="application/json"
    )
    assert post().status_code == 200
    over = post()
    assert over.status_code == 429 and int(over["Retry-After"]) > 0
    assert set(over.json()) == {"message"}


def test_it_runs_one_generation_per_client_at_a_time(client, tiny_engine, limits_store):
    url = _stream_url(client.post(reverse("inference:generate"), FORM))
    held = demo_gate(tiny_engine).admit("127.0.0.1")  # this client's run, still going
    try:
        page = client.post(reverse("inference:generate"), FORM)
        stream, _body = _run(client, url)
        api = client.post("/api/demo/generate", json.dumps({"prompt": "x"}), content_type="application/json")
    finally:
        held.release()
    assert page.status_code == 429 and "already have a generation running" in page.content.decode()
    assert stream.status_code == 429 and not stream.streaming and int(stream["Retry-After"]) > 0
    assert api.status_code == 429
    # The run over, the client may start the next one.
    assert client.post(reverse("inference:generate"), FORM).status_code == 200


@pytest.fixture(params=["memory", "redis"])
def limits_store(request):
    """The limits store the gates share: the per-process memory cache, and Redis (127.0.0.1:6379, database 13, a
    key prefix of this run's own) as production configures it."""
    if request.param == "memory":
        yield
        return
    import os
    import secrets

    from tests.scale_out import REDIS_HOST, REDIS_PORT, reachable

    if not reachable(REDIS_HOST, REDIS_PORT):
        message = f"Redis does not answer on {REDIS_HOST}:{REDIS_PORT}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    import redis

    prefix = f"rigfit-test-{secrets.token_hex(4)}"
    location = f"redis://{REDIS_HOST}:{REDIS_PORT}/13"
    redis_cache = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": location, "KEY_PREFIX": prefix}
    with override_settings(CACHES={"default": redis_cache, "limits": redis_cache}):
        yield
    client = redis.Redis.from_url(location)  # this run's keys only: another test process may share the database
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_it_shares_the_slots_between_processes_through_the_store(tiny_engine, limits_store):
    # Two gates over two processes' own slots (each allows one) and one store: one run at a time in all.
    gates = [
        DemoGate(slots=Slots(1, 1), rate=10, rate_window_s=60, lease_s=60, queue_timeout_s=0.05, poll_s=0.01)
        for _ in range(2)
    ]
    first = gates[0].admit("192.0.2.1")
    with pytest.raises(Exception) as refused:
        gates[1].admit("192.0.2.2")
    assert refused.value.status == 503 and "timed out" in str(refused.value)
    assert gates[1].slots.running == 0 and gates[1].slots.waiting == 0  # nothing left behind by the refusal
    first.release()
    second = gates[1].admit("192.0.2.2")
    second.release()
    first.release()  # twice: the second call is a no-op
    assert gates[0].slots.running == 0 and gates[1].slots.running == 0


@pytest.mark.django_db  # closing a response sends request_finished, which checks the database connection
def test_it_releases_the_run_when_the_stream_is_closed_before_its_first_event(client, tiny_engine):
    url = _stream_url(client.post(reverse("inference:generate"), FORM))
    response = client.get(url)
    assert response.status_code == 200 and tiny_engine.slots.running == 1
    response.close()  # the server closes an unread response when the client has gone
    assert tiny_engine.slots.running == 0
    assert client.post(reverse("inference:generate"), FORM).status_code == 200  # no stale hold on the client


@override_settings(CACHES=DEAD_REDIS)
def test_it_fails_closed_with_503_when_the_limit_store_is_down(client, tiny_engine):
    page = client.post(reverse("inference:generate"), FORM)
    assert page.status_code == 503 and int(page["Retry-After"]) > 0
    assert "store that keeps its limits is unreachable" in page.content.decode()
    stream = client.get(reverse("inference:stream"), {"t": issue_ticket({**FORM})})
    assert stream.status_code == 503 and not stream.streaming
    api = client.post("/api/demo/generate", json.dumps({"prompt": "x"}), content_type="application/json")
    assert api.status_code == 503 and "unreachable" in api.json()["message"]
    assert tiny_engine.slots.running == 0 and tiny_engine.slots.waiting == 0


def test_it_serves_no_demo_on_a_host_where_it_is_off(client, make_tiny_engine):
    make_tiny_engine(enabled=False)
    assert client.get(reverse("inference:demo")).status_code == 404
    assert client.post(reverse("inference:generate"), FORM).status_code == 404
    api = client.post("/api/demo/generate", json.dumps({"prompt": "x"}), content_type="application/json")
    assert api.status_code == 404 and "does not run on this host" in api.json()["message"]


@pytest.fixture
def tiny_vision(tmp_path):
    from inference.vision import VisionEngine, load_vlm, save_tiny_vlm, set_vision

    set_vision(VisionEngine(load_vlm(save_tiny_vlm(tmp_path / "vlm")), cache_entries=2))
    yield
    set_vision(None)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_it_limits_the_vision_endpoint_per_client(client, make_tiny_engine, tiny_vision):
    make_tiny_engine(rate=1)
    post = lambda: client.post(  # noqa: E731
        reverse("inference:vision"), {"task": "caption", "image": SimpleUploadedFile("a.png", _png())}
    )
    assert post().status_code == 200
    refused = post()
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    engine_after = make_tiny_engine(rate=5)
    held = demo_gate(engine_after).admit("127.0.0.1")  # a text run of the same client does not block vision
    try:
        assert post().status_code == 200
    finally:
        held.release()


def test_the_api_schema_declares_every_field_the_engine_returns(client, tiny_engine):
    schema = client.get("/api/openapi.json").json()["components"]["schemas"]
    assert set(schema["MetricsOut"]["properties"]) == set(Metrics().as_dict())
    assert set(schema["StatusOut"]["properties"]) == set(tiny_engine.status())
    generate = client.get("/api/openapi.json").json()["paths"]["/api/demo/generate"]["post"]["responses"]
    assert set(generate) >= {"200", "404", "422", "429", "503"}
    for code in ("404", "422", "429", "503"):
        assert generate[code]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorOut")
