"""NUL characters get a clear 422/400 before they reach the database (PostgreSQL refuses them in text)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_it_refuses_a_nul_in_an_api_query_with_a_json_message(client):
    response = client.get("/api/models", {"q": "gem\x00ma"})
    assert response.status_code == 422
    assert "NUL" in response.json()["message"]


def test_it_refuses_a_nul_in_a_json_body_escaped_or_raw(client):
    escaped = client.post("/api/fit/estimate", '{"config": {"model_type": "llama\\u0000"}}', "application/json")
    assert escaped.status_code == 422 and "NUL" in escaped.json()["message"]
    raw = client.post("/api/fit/estimate", b'{"config": "\x00"}', "application/json")
    assert raw.status_code == 422


def test_it_refuses_a_nul_in_an_urlencoded_page_form_with_a_plain_message(client):
    response = client.post("/benchmarks/submit/", "hardware=rtx%00", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert "NUL" in response.content.decode()


def test_it_leaves_a_multipart_form_to_its_view_which_shows_the_field_error(client):
    # multipart bodies may carry uploads that a view refuses by size before reading (tests/inference/test_vision.py)
    response = client.post("/benchmarks/submit/", {"hardware": "rtx\x00"})
    assert response.status_code == 422
    assert "Null characters are not allowed" in response.content.decode()


def test_it_lets_ordinary_requests_through(client):
    assert client.get("/api/models", {"q": "gemma"}).status_code == 200
    # a backslash-u sequence that is not a NUL once decoded is ordinary text
    response = client.post("/api/fit/estimate", '{"config": {"model_type": "\\\\u0000"}}', "application/json")
    assert "NUL" not in response.content.decode()
