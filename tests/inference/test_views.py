from __future__ import annotations

import dataclasses
import json
import re

import pytest
from django.urls import reverse

from inference.slots import issue_ticket
from inference.views import demo_gate


def _events(body: str) -> list[tuple[str, str]]:
    out = []
    for block in body.strip().split("\n\n"):
        lines = block.split("\n")
        name = lines[0].removeprefix("event: ")
        data = "\n".join(line.removeprefix("data: ") for line in lines[1:])
        out.append((name, data))
    return out


def _ticket(**data) -> str:
    params = {"prompt": "hello", "temperature": 0.0, "top_p": 1.0, "max_new_tokens": 6, **data}
    return issue_ticket(params)


@pytest.mark.django_db
def test_it_shows_the_demo_page(client, tiny_engine):
    response = client.get(reverse("inference:demo"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "htmx-ext-sse-2.2.4.min.js" in body
    assert "inference.css" in body
    assert 'name="prompt"' in body


@pytest.mark.django_db
def test_it_refuses_post_on_the_page_and_get_on_generate(client, tiny_engine):
    assert client.post(reverse("inference:demo")).status_code == 405
    assert client.get(reverse("inference:generate")).status_code == 405


@pytest.mark.django_db
@pytest.mark.parametrize(
    "field,value",
    [("temperature", "9"), ("top_p", "0"), ("max_new_tokens", "100000"), ("max_new_tokens", "abc"), ("prompt", " ")],
)
def test_it_answers_422_with_the_form_for_bad_settings(client, tiny_engine, field, value):
    data = {"prompt": "hi", "temperature": "0.7", "top_p": "0.9", "max_new_tokens": "8", field: value}
    response = client.post(reverse("inference:generate"), data)
    assert response.status_code == 422
    assert response["HX-Retarget"] == "#demo-form"
    assert "errorlist" in response.content.decode()


@pytest.mark.django_db
def test_it_answers_422_for_a_prompt_over_the_token_cap(client, make_tiny_engine):
    make_tiny_engine(max_prompt_tokens=3)
    response = client.post(
        reverse("inference:generate"), {"prompt": "too long", "temperature": "0", "top_p": "1", "max_new_tokens": "4"}
    )
    assert response.status_code == 422
    assert "the limit is 3" in response.content.decode()


@pytest.mark.django_db
def test_it_answers_the_run_fragment_with_a_closing_sse_connection(client, tiny_engine):
    response = client.post(
        reverse("inference:generate"), {"prompt": "hi", "temperature": "0", "top_p": "1", "max_new_tokens": "4"}
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert 'hx-ext="sse"' in body
    assert 'sse-close="done"' in body
    assert re.search(r'sse-connect="/demo/stream/\?t=[^"]+"', body)


@pytest.mark.django_db
def test_it_answers_429_with_retry_after_when_busy(client, make_tiny_engine):
    engine = make_tiny_engine(max_concurrent=1, max_queue=0)
    held = demo_gate(engine).admit("192.0.2.7")  # another visitor's run holds the one slot; nobody may queue
    try:
        response = client.post(
            reverse("inference:generate"), {"prompt": "hi", "temperature": "0", "top_p": "1", "max_new_tokens": "4"}
        )
    finally:
        held.release()
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "busy" in response.content.decode()


def test_it_streams_tokens_in_order_and_ends_with_done_under_wsgi(client, tiny_engine):
    response = client.get(reverse("inference:stream"), {"t": _ticket()})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    events = _events(b"".join(response.streaming_content).decode())
    names = [name for name, _ in events]
    assert names[0] == "status"
    assert names[-1] == "done"
    assert names.count("token") == 6 and names.count("stats") == 6
    stats = [data for name, data in events if name == "stats"]
    assert stats[0].startswith("1 token ·") and stats[1].startswith("2 tokens ·") and stats[-1].startswith("6 tokens")
    assert "Decode" in events[-1][1] and "max_new_tokens" in events[-1][1]
    assert tiny_engine.slots.running == 0


def test_it_answers_503_before_the_stream_when_no_slot_frees_up(client, make_tiny_engine):
    engine = make_tiny_engine(queue_timeout_s=0.05, max_queue=1)
    held = demo_gate(engine).admit("192.0.2.7")
    try:
        response = client.get(reverse("inference:stream"), {"t": _ticket()})
    finally:
        held.release()
    assert response.status_code == 503  # a status before any event, not a 200 with the refusal inside the stream
    assert not response.streaming
    assert int(response["Retry-After"]) > 0
    assert "busy" in response.content.decode()
    assert engine.slots.running == 0 and engine.slots.waiting == 0


def test_it_answers_429_before_the_stream_when_the_queue_is_full(client, make_tiny_engine):
    engine = make_tiny_engine(max_queue=0)
    held = demo_gate(engine).admit("192.0.2.7")
    try:
        response = client.get(reverse("inference:stream"), {"t": _ticket()})
    finally:
        held.release()
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert not response.streaming


def test_it_rejects_a_tampered_ticket(client, tiny_engine):
    assert client.get(reverse("inference:stream"), {"t": "nope"}).status_code == 400


def test_it_reports_status_on_the_api(client, tiny_engine):
    response = client.get("/api/demo/status")
    assert response.status_code == 200
    assert response.json()["state"] == "ready"
    assert response.json()["output_head"] == "fp32"  # the tiny engine is not quantized


def test_it_generates_on_the_api(client, tiny_engine):
    response = client.post(
        "/api/demo/generate", json.dumps({"prompt": "hi", "max_new_tokens": 5}), content_type="application/json"
    )
    assert response.status_code == 200
    data = response.json()
    assert data["metrics"]["tokens_generated"] == 5
    assert isinstance(data["text"], str)


@pytest.mark.parametrize(
    "payload",
    [
        {"prompt": ""},
        {"prompt": "x", "temperature": -1},
        {"prompt": "x", "top_p": 2},
        {"prompt": "x", "max_new_tokens": 0},
    ],
)
def test_it_answers_422_on_the_api_for_bad_parameters(client, tiny_engine, payload):
    response = client.post("/api/demo/generate", json.dumps(payload), content_type="application/json")
    assert response.status_code == 422


def test_it_answers_422_on_the_api_over_the_configured_caps(client, make_tiny_engine):
    make_tiny_engine(max_new_tokens=8, max_prompt_tokens=3)
    post = lambda p: client.post("/api/demo/generate", json.dumps(p), content_type="application/json")  # noqa: E731
    assert post({"prompt": "x", "max_new_tokens": 9}).status_code == 422
    assert post({"prompt": "longer", "max_new_tokens": 2}).status_code == 422


def test_it_answers_429_and_503_on_the_api_with_retry_after(client, make_tiny_engine):
    engine = make_tiny_engine(queue_timeout_s=0.05, max_queue=1)
    held = demo_gate(engine).admit("192.0.2.7")
    try:
        timed_out = client.post("/api/demo/generate", json.dumps({"prompt": "x"}), content_type="application/json")
        engine.slots.enqueue()  # a real waiter of this process takes the one place in the queue
        try:
            full = client.post("/api/demo/generate", json.dumps({"prompt": "x"}), content_type="application/json")
        finally:
            engine.slots.dequeue()
    finally:
        held.release()
    assert timed_out.status_code == 503 and int(timed_out["Retry-After"]) > 0
    assert set(timed_out.json()) == {"message"} and "timed out" in timed_out.json()["message"]
    assert full.status_code == 429 and int(full["Retry-After"]) > 0
    assert "busy" in full.json()["message"]


@pytest.mark.django_db
def test_it_names_the_model_and_its_quantization_before_the_first_load(client):
    from inference.conf import load_settings
    from inference.engine import Engine, set_engine
    from tests.factories import make_model

    make_model(name="Gemma 3 270M", slug="gemma-3-270m")
    engine = Engine(dataclasses.replace(load_settings(), model_path=None, model_slug="gemma-3-270m"))
    set_engine(engine)
    try:
        body = client.get(reverse("inference:demo")).content.decode()
    finally:
        set_engine(None)
    assert engine.state == "idle"  # nothing was loaded or assembled to name it
    assert engine.status()["weights"] == ""
    line = re.search(r'<p class="demo-model">(.*?)</p>', body, re.S).group(1)
    assert ">Gemma 3 270M</a>" in line
    assert "gemma-3-270m-q4_k_m.gguf" in line and "<strong>Q4_K_M</strong>" in line
    # No empty weights figure before the model loads (it read "weights in memory: · running on").
    assert "weights in memory" not in line
    assert "<strong>Q4_K_M</strong> · running on <strong>" in " ".join(line.split())


@pytest.mark.django_db
def test_it_falls_back_to_the_slug_when_the_catalog_lacks_the_model(client, tiny_engine):
    body = client.get(reverse("inference:demo")).content.decode()
    line = re.search(r'<p class="demo-model">(.*?)</p>', body, re.S).group(1)
    assert tiny_engine.settings.model_slug in line
    assert "quantization" not in line  # the in-process tiny model has no file to name
