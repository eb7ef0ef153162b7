from __future__ import annotations

import json

import pytest

from tests.catalog.test_importers import LLAMA_3_1_8B

pytestmark = pytest.mark.django_db

FIT = {"model": "llama-3-1-8b", "quant": "Q4_K_M", "hardware": "geforce-rtx-4090", "ctx": 8192}


def test_it_lists_models_with_pagination(client, catalog):
    body = client.get("/api/models", {"page_size": 1}).json()
    assert body["count"] == 2
    assert [m["slug"] for m in body["items"]] == ["gemma-3-270m"]
    body = client.get("/api/models", {"page_size": 1, "page": 2}).json()
    assert [m["slug"] for m in body["items"]] == ["llama-3-1-8b"]


def test_it_caps_the_page_size(client, catalog, settings):
    from tests.factories import make_model

    for _ in range(110):
        make_model()
    body = client.get("/api/models", {"page_size": 10_000}).json()
    assert len(body["items"]) == 100
    assert body["count"] == 112


def test_it_filters_models_by_what_fits(client, catalog):
    body = client.get("/api/models", {"fits": "geforce-rtx-4060", "ctx": 4096, "sort": "-params"}).json()
    assert [m["slug"] for m in body["items"]] == ["llama-3-1-8b", "gemma-3-270m"]
    assert client.get("/api/models", {"fits": "nope"}).status_code == 404


def test_it_returns_a_model_with_its_quantizations(client, catalog):
    body = client.get("/api/models/gemma-3-270m").json()
    assert body["n_layers"] == 18 and body["sliding_window"] == 512
    names = {q["name"]: q for q in body["quantizations"]}
    assert names["IQ4_XS"]["exact"] is True and names["Q4_K_M"]["exact"] is False


def test_it_answers_404_with_a_message(client, catalog):
    for url in ("/api/models/nope", "/api/hardware/nope"):
        response = client.get(url)
        assert response.status_code == 404
        assert "nope" in response.json()["message"]


def test_it_computes_a_fit(client, catalog):
    body = client.get("/api/fit", FIT).json()
    parts = ("weights_bytes", "kv_cache_bytes", "compute_bytes", "overhead_bytes", "vision_bytes")
    assert body["total_bytes"] == sum(body[p] for p in parts)
    # Llama 3.1 8B at 8192 tokens, f16: 32 layers x 2 x 8 KV heads x 128 x 8192 cells x 2 bytes.
    assert body["kv_cache_bytes"] == 32 * 2 * 8 * 128 * 8192 * 2
    assert body["verdict"] == "fits-gpu"
    assert body["gpu_layers"] == body["n_layers"] == 32
    assert body["est_decode_tps"] > 0 and body["est_prefill_tps"] > 0
    assert "kv_cache_bytes" in body["exact"] and "weights_bytes" in body["estimated"]
    # The total of estimated parts is not exact.
    assert "total_bytes" not in body["exact"]


def test_it_grows_memory_with_users_and_kv_precision(client, catalog):
    one = client.get("/api/fit", FIT).json()
    four = client.get("/api/fit", {**FIT, "users": 4}).json()
    q8 = client.get("/api/fit", {**FIT, "kv_type": "q8_0"}).json()
    assert four["kv_cache_bytes"] == 4 * one["kv_cache_bytes"]
    assert q8["kv_cache_bytes"] < one["kv_cache_bytes"]


def test_it_says_when_a_model_does_not_fit(client, catalog):
    body = client.get("/api/fit", {**FIT, "quant": "F16", "hardware": "geforce-rtx-4060", "ctx": 131072}).json()
    assert body["verdict"] in {"partial", "no-fit"}
    assert body["headroom_bytes"] < 0


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({**FIT, "model": "nope"}, 404),
        ({**FIT, "hardware": "nope"}, 404),
        ({**FIT, "quant": "Q9_X"}, 404),
        ({**FIT, "ctx": 0}, 422),
        ({**FIT, "ctx": "lots"}, 422),
        ({**FIT, "ctx": 10**12}, 422),
        ({**FIT, "users": 0}, 422),
        ({**FIT, "kv_type": "q1"}, 422),
        ({"model": "llama-3-1-8b"}, 422),
    ],
)
def test_it_rejects_bad_fit_parameters(client, catalog, params, status):
    response = client.get("/api/fit", params)
    assert response.status_code == status
    assert response.json()["message"]
    if status == 422:
        assert response.json()["errors"]


def test_it_ranks_best_fits_for_a_device(client, catalog):
    body = client.get("/api/fits", {"hardware": "geforce-rtx-4060"}).json()
    assert [b["model"] for b in body] == ["llama-3-1-8b", "gemma-3-270m"]


def test_it_estimates_a_model_from_its_config(client, catalog):
    config = LLAMA_3_1_8B
    response = client.post(
        "/api/fit/estimate",
        json.dumps({"config": config, "quant": "Q4_K_M", "ctx": 8192, "hardware": "geforce-rtx-4090"}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["kv_cache_bytes"] == 32 * 2 * 8 * 128 * 8192 * 2
    assert 7.5e9 < body["n_params"] < 8.5e9
    assert body["verdict"] == "fits-gpu"


@pytest.mark.parametrize(
    "payload",
    [
        {"config": {}, "quant": "Q4_K_M"},
        {"config": {"hidden_size": "big"}, "quant": "Q4_K_M"},
        {"config": {"num_hidden_layers": -3, "hidden_size": 64}, "quant": "Q4_K_M"},
        {"quant": "Q4_K_M"},
        "not json at all",
    ],
)
def test_it_rejects_unusable_configs(client, catalog, payload):
    body = payload if isinstance(payload, str) else json.dumps(payload)
    response = client.post("/api/fit/estimate", body, content_type="application/json")
    assert response.status_code in (400, 422)
    assert "message" in response.json() or "detail" in response.json()


def test_it_publishes_an_openapi_schema(client):
    schema = client.get("/api/openapi.json").json()
    assert "/api/fit" in schema["paths"] and "/api/fit/estimate" in schema["paths"]
    assert client.get("/api/docs").status_code == 200


def test_it_answers_fits_on_the_same_basis_as_the_pages(client, catalog):
    # Llama 8B, 4,096 tokens of f16 KV on the 8 GiB card: usable = 8,589,934,592 - 419,943,424 (400 MiB + vocab
    # 128,256 x 4 bytes of output buffer) = 8,169,991,168 bytes, whatever quant is picked.
    rows = {b["model"]: b for b in client.get("/api/fits", {"hardware": "geforce-rtx-4060"}).json()}
    llama = rows["llama-3-1-8b"]
    assert llama["usable_bytes"] == 8_169_991_168
    assert llama["headroom_bytes"] == llama["usable_bytes"] - llama["needed_bytes"]
    # needed = total - overhead - the token embeddings llama.cpp keeps in host memory: 128,256 x 4,096 values at the
    # quant's embedding type, 4.5 to 8.5 bits (Q4_K .. Q8_0): 295,501,824 to 558,170,112 bytes.
    host = llama["total_bytes"] - 419_943_424 - llama["needed_bytes"]
    assert 295_501_824 * 0.97 <= host <= 558_170_112 * 1.03
    assert (llama["ctx"], llama["ctx_clamped"]) == (4096, False)
    assert llama["recommended"] is True


def test_it_documents_the_fit_fields_in_the_schema(client):
    schema = client.get("/api/openapi.json").json()
    fields = schema["components"]["schemas"]["FitOut"]["properties"]
    for name in ("ctx", "ctx_asked", "ctx_clamped", "needed_bytes", "usable_bytes", "headroom_bytes", "max_ctx"):
        assert fields[name].get("description"), name
    assert "recommendation" in fields and "llama_cpp_flags" in fields
