from __future__ import annotations

import pytest

from catalog import fit
from catalog.services import fit_for

pytestmark = pytest.mark.django_db


def test_it_shows_the_home_page_with_featured_models(client, catalog):
    response = client.get("/")
    assert response.status_code == 200
    assert "Gemma 3 270M" in response.text
    assert 'name="hardware"' in response.text


def test_it_refuses_to_change_state_on_a_post(client, catalog):
    for url in ("/", "/models/", "/models/gemma-3-270m/", "/hardware/", "/compare/"):
        assert client.post(url).status_code == 405


def test_it_shows_every_quantization_on_the_model_page(client, catalog):
    response = client.get("/models/gemma-3-270m/")
    assert response.status_code == 200
    for name in ("F16", "Q8_0", "Q6_K", "Q4_K_M", "Q2_K", "IQ4_XS"):
        assert f">{name}</a>" in response.text
    # Quants without a published size are estimated, and the page says so.
    assert "estimated" in response.text
    assert "ollama pull gemma3:270m" in response.text
    assert "Choose your hardware" in response.text


def test_it_gives_a_verdict_for_the_chosen_hardware(client, catalog):
    response = client.get("/models/llama-3-1-8b/", {"hardware": "geforce-rtx-4090", "ctx": 8192, "quant": "Q4_K_M"})
    expected = fit_for(
        model=catalog["llama"],
        quant=catalog["llama"].quantizations.get(name="Q4_K_M"),
        hardware=catalog["rtx4090"],
        options=fit.FitOptions(ctx=8192),
    )
    assert expected.verdict == fit.Verdict.FITS_GPU
    assert "Q4_K_M on GeForce RTX 4090" in response.text
    assert "Fits in GPU memory" in response.text


def test_it_swaps_only_the_fit_panel_for_htmx(client, catalog):
    full = client.get("/models/llama-3-1-8b/", {"hardware": "geforce-rtx-4060", "ctx": 32768})
    partial = client.get(
        "/models/llama-3-1-8b/", {"hardware": "geforce-rtx-4060", "ctx": 32768}, headers={"HX-Request": "true"}
    )
    assert partial.status_code == 200
    assert partial.text.lstrip().startswith('<div id="fit-panel"')
    assert "<html" not in partial.text
    # The same fragment is inside the full page.
    assert 'id="fit-panel"' in full.text and "<html" in full.text


def test_it_grows_the_kv_figure_with_the_context(client, catalog):
    small = client.get("/models/llama-3-1-8b/", {"ctx": 2048}, headers={"HX-Request": "true"}).context["kv_bytes"]
    large = client.get("/models/llama-3-1-8b/", {"ctx": 65536}, headers={"HX-Request": "true"}).context["kv_bytes"]
    assert large == 32 * small


@pytest.mark.parametrize(
    "params",
    [
        {"ctx": "-5"},
        {"ctx": "banana"},
        {"ctx": "99999999999999999999"},
        {"hardware": "no-such-device"},
        {"users": "0"},
        {"users": "100000"},
        {"kv_type": "q1_0"},
        {"gpu_count": "999"},
        {"ram_gb": "7"},
        {"quant": "NOPE"},
        {"hardware": "x" * 5000},
    ],
)
def test_it_shows_field_errors_instead_of_failing(client, catalog, params):
    response = client.get("/models/llama-3-1-8b/", params)
    assert response.status_code == 200
    if "quant" not in params:
        assert 'role="alert"' in response.text


def test_it_answers_404_for_an_unknown_model_or_device(client, catalog):
    assert client.get("/models/nope/").status_code == 404
    assert client.get("/hardware/nope/").status_code == 404


def test_it_filters_the_catalog(client, catalog):
    response = client.get("/models/", {"band": "tiny"})
    assert "Gemma 3 270M" in response.text and "Llama 3.1 8B" not in response.text
    response = client.get("/models/", {"q": "llama"})
    assert "Llama 3.1 8B" in response.text and "Gemma 3 270M" not in response.text


def test_it_lists_only_models_that_fit_a_device(client, catalog):
    response = client.get("/models/", {"fits": "geforce-rtx-4060", "ctx": 4096, "sort": "-params"})
    assert response.status_code == 200
    best = response.context["best_by_model"]
    assert {b.model.slug for b in best.values()} == {"gemma-3-270m", "llama-3-1-8b"}
    # 8 GB holds Llama 8B only below F16: the best quant chosen is never F16.
    assert best[catalog["llama"].pk].quant.name != "F16"


def test_it_survives_bad_filters(client, catalog):
    for params in ({"band": "gigantic"}, {"fits": "nope"}, {"ctx": "-1"}, {"page": "999"}, {"sort": "evil"}):
        assert client.get("/models/", params).status_code == 200


def test_it_ranks_what_runs_on_a_device(client, catalog):
    response = client.get("/hardware/geforce-rtx-4060/", {"ctx": 4096})
    assert response.status_code == 200
    on_gpu = response.context["on_gpu"]
    assert [b.model.slug for b in on_gpu] == ["llama-3-1-8b", "gemma-3-270m"]
    assert all(b.result.verdict == fit.Verdict.FITS_GPU for b in on_gpu)


def test_it_compares_models_side_by_side(client, catalog):
    response = client.get(
        "/compare/", {"models": ["gemma-3-270m", "llama-3-1-8b", "ghost"], "hardware": "geforce-rtx-4090"}
    )
    assert response.status_code == 200
    assert [c["model"].slug for c in response.context["columns"]] == ["gemma-3-270m", "llama-3-1-8b"]
    assert "ghost" in response.text
    assert client.get("/compare/", {"models": ["a", "b", "c", "d", "e"]}).status_code == 200


def test_it_bounds_the_queries_per_page(client, catalog, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        client.get("/models/llama-3-1-8b/", {"hardware": "geforce-rtx-4090", "ctx": 8192})
    with django_assert_max_num_queries(6):
        client.get("/models/", {"fits": "geforce-rtx-4090"})
    with django_assert_max_num_queries(6):
        client.get("/hardware/geforce-rtx-4090/")
    with django_assert_max_num_queries(5):
        client.get("/hardware/", {"kind": "gpu"})


def test_it_offers_moondreams_own_api_for_moondream(client, catalog):
    from catalog.models import Model
    from tests.factories import make_model, make_quantization

    make_model(
        name="Moondream 2",
        slug="moondream-2",
        family="Moondream",
        source_repo="vikhyatk/moondream2",
        modality="vision-language",
        n_params=1_860_000_000,
        vision_params=430_000_000,
        image_tokens=729,
    )
    response = client.get("/models/moondream-2/")
    assert "model.query(image" in response.text
    assert "vLLM" not in response.text
    assert "text-generation" not in response.text  # a text pipeline cannot run Moondream
    assert "What does the vision part" in response.text
    make_quantization(Model.objects.get(slug="moondream-2"), name="Q4_K_M")
    panel = client.get("/models/moondream-2/", {"hardware": "geforce-rtx-4060"}).text
    assert 'class="seg v"' in panel and "vision encoder 0.86 GB" in panel  # 430M at F16, drawn in the bar


def test_it_offers_moondreams_client_for_the_0_5b_bundle(client, catalog):
    from tests.factories import make_model

    revision = "9dddae84d54db4ac56fe37817aeaeb502ed083e2"
    make_model(
        name="Moondream 0.5B",
        slug="moondream-0-5b",
        family="Moondream",
        source_repo="vikhyatk/moondream2",
        source_revision=revision,
        modality="vision-language",
        n_params=568_943_462,
    )
    text = client.get("/models/moondream-0-5b/").text
    assert f"https://huggingface.co/vikhyatk/moondream2/resolve/{revision}/moondream-0_5b-int4.mf.gz" in text
    assert "pip install moondream==0.0.5" in text
    assert "trust_remote_code" not in text  # the 2B model's transformers route would load the wrong model


def test_it_answers_the_home_page_what_fits_form(client, catalog):
    response = client.get("/models/", {"hardware": "geforce-rtx-4060", "ctx": 8192, "sort": "-params"})
    assert response.context["fits_on"] == catalog["rtx4060"]
    assert "that run on GeForce RTX 4060" in response.text


def test_it_starts_with_the_quant_nearest_q4_k_m_when_a_model_lacks_it(client, catalog):
    from tests.factories import make_model, make_quantization

    model = make_model(slug="no-k-quants")
    for name, bits in (("BF16", 16.0), ("Q8_0", 8.5), ("Q4_0", 4.5)):
        make_quantization(model, name=name, bits_per_weight=bits)
    page = client.get("/models/no-k-quants/", {"hardware": "geforce-rtx-4060"})
    assert page.context["chosen"].quant.name == "Q4_0"
    with_k = client.get("/models/gemma-3-270m/", {"hardware": "geforce-rtx-4060"})
    assert with_k.context["chosen"].quant.name == "Q4_K_M"
