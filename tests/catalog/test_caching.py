from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_it_serves_a_cached_page_until_the_catalog_changes(client, catalog, django_assert_num_queries):
    url = "/models/gemma-3-270m/?hardware=geforce-rtx-4090"
    first = client.get(url)
    with django_assert_num_queries(0):
        again = client.get(url)
    assert again.content == first.content

    model = catalog["gemma"]
    model.name = "Gemma Three Tiny"
    model.save()
    assert "Gemma Three Tiny" in client.get(url).text


def test_it_keeps_htmx_fragments_and_full_pages_apart(client, catalog):
    url = "/models/gemma-3-270m/?ctx=2048"
    full = client.get(url)
    fragment = client.get(url, headers={"HX-Request": "true"})
    assert "<html" in full.text and "<html" not in fragment.text
    assert "HX-Request" in full["Vary"] and "HX-Request" in fragment["Vary"]
    assert "<html" in client.get(url).text


def test_it_caches_no_user_specific_token(client, catalog):
    response = client.get("/models/gemma-3-270m/")
    assert "csrfmiddlewaretoken" not in response.text and "X-CSRFToken" not in response.text
    assert "csrftoken" not in response.cookies


def test_it_does_not_cache_errors(client, catalog):
    assert client.get("/models/not-yet/").status_code == 404
    from tests.factories import make_model

    make_model(slug="not-yet")
    assert client.get("/models/not-yet/").status_code == 200


def test_it_caches_api_answers_until_the_catalog_changes(client, catalog, django_assert_num_queries):
    url = "/api/fit?model=llama-3-1-8b&quant=Q4_K_M&hardware=geforce-rtx-4090&ctx=8192"
    first = client.get(url).json()
    with django_assert_num_queries(0):
        assert client.get(url).json() == first

    hardware = catalog["rtx4090"]
    hardware.bandwidth_gbps = 504.0
    hardware.save()
    assert client.get(url).json()["est_decode_tps"] < first["est_decode_tps"]


def test_it_renders_the_cached_fragments_anew_when_the_data_change(client, catalog):
    """The picker and the benchmarks section are cached fragments; a new device or run must still show at once."""
    from tests.factories import make_hardware

    url_a = "/models/gemma-3-270m/?ctx=1024"
    url_b = "/models/gemma-3-270m/?ctx=2048"  # another page, so the whole-page cache is not what answers
    assert "Brand New GPU" not in client.get(url_a).text
    make_hardware(name="Brand New GPU", slug="brand-new-gpu", popular=True)
    page = client.get(url_b).text
    assert '<option value="brand-new-gpu"' in page
    selected = client.get("/models/gemma-3-270m/?ctx=4096&hardware=brand-new-gpu").text
    assert '<option value="brand-new-gpu" selected>' in selected
    assert selected.count(" selected>") >= 1 and '<option value="brand-new-gpu">' not in selected
