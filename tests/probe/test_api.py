"""GET /api/probe/match: the browser's detect button asks it which catalog device a renderer string names."""

from __future__ import annotations

import pytest

from probe.matching import GIB
from tests.factories import make_hardware

pytestmark = pytest.mark.django_db

URL = "/api/probe/match"


@pytest.fixture
def catalog():
    return {
        "4090": make_hardware(name="NVIDIA GeForce RTX 4090", slug="rtx-4090", popular=True),
        "3060-8": make_hardware(name="NVIDIA GeForce RTX 3060 8GB", slug="rtx-3060-8gb", memory_bytes=8 * GIB),
        "3060-12": make_hardware(name="NVIDIA GeForce RTX 3060 12GB", slug="rtx-3060-12gb", memory_bytes=12 * GIB),
        "m1pro": make_hardware(
            name="Apple M1 Pro",
            slug="apple-m1-pro",
            vendor="Apple",
            kind="unified",
            memory_bytes=16 * GIB,
            aliases=["M1 Pro"],
        ),
    }


def test_it_matches_a_webgl_renderer(client, catalog):
    renderer = "ANGLE (NVIDIA, NVIDIA GeForce RTX 4090 Direct3D11 vs_5_0 ps_5_0, D3D11)"
    response = client.get(URL, {"renderer": renderer, "vendor": "Google Inc. (NVIDIA)"})
    assert response.status_code == 200
    data = response.json()
    assert data["slug"] == "rtx-4090" and data["name"] == "NVIDIA GeForce RTX 4090"
    assert data["detected"] == "NVIDIA GeForce RTX 4090"
    assert data["url"] == "/hardware/rtx-4090/"
    assert 0 < data["score"] <= 1


def test_it_uses_memory_as_a_tie_breaker(client, catalog):
    assert client.get(URL, {"renderer": "NVIDIA GeForce RTX 3060", "memory_gb": 12}).json()["slug"] == "rtx-3060-12gb"
    assert client.get(URL, {"renderer": "NVIDIA GeForce RTX 3060", "memory_gb": 8}).json()["slug"] == "rtx-3060-8gb"


def test_it_matches_apple_through_angle_metal(client, catalog):
    renderer = "ANGLE (Apple, ANGLE Metal Renderer: Apple M1 Pro, Unspecified Version)"
    assert client.get(URL, {"renderer": renderer}).json()["slug"] == "apple-m1-pro"


def test_it_answers_404_with_a_message_when_nothing_matches(client, catalog):
    response = client.get(URL, {"renderer": "Apple GPU"})
    assert response.status_code == 404
    assert "No catalog hardware matches" in response.json()["message"]


@pytest.mark.parametrize(
    "params",
    [{}, {"renderer": ""}, {"renderer": "   "}, {"renderer": "x" * 301}, {"renderer": "RTX 4090", "memory_gb": "lots"},
     {"renderer": "RTX 4090", "memory_gb": -1}, {"renderer": "RTX 4090", "memory_gb": 1e9}],
)  # fmt: skip
def test_it_rejects_bad_input_with_422(client, catalog, params):
    response = client.get(URL, params)
    assert response.status_code == 422
    assert response.json()["message"]


def test_it_refuses_post(client):
    assert client.post(URL, {"renderer": "RTX 4090"}).status_code == 405
