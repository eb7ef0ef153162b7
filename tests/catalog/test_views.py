from __future__ import annotations

import re

import pytest

from catalog import fit

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
    # Ollama pulls the page's quant (Q4_K_M, the default) from the model's GGUF repository.
    assert "ollama pull hf.co/ggml-org/gemma-3-270m-GGUF:Q4_K_M" in response.text
    assert "Choose your hardware" in response.text


def test_it_gives_a_verdict_for_the_chosen_hardware(client, catalog):
    # About 4.9 GB of Q4_K_M weights and 1.07 GB of KV at 8,192 tokens on a 24 GiB card: room to spare (the exact
    # figures: test_it_shows_needs_usable_and_headroom_written_out).
    response = client.get("/models/llama-3-1-8b/", {"hardware": "geforce-rtx-4090", "ctx": 8192, "quant": "Q4_K_M"})
    assert "Q4_K_M on GeForce RTX 4090: <b>Fits in GPU memory</b>" in response.text


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
    # The model page reads its comparable models as three neighbours-in-size queries (LIMIT 3, 1, 1) instead of the
    # whole catalog: more queries, each bounded, so the page's cost does not grow with the catalog.
    with django_assert_max_num_queries(10):
        client.get("/models/llama-3-1-8b/", {"hardware": "geforce-rtx-4090", "ctx": 8192})
    # The first list of fits on a device builds its fit table (the catalog's models and quants: 2 queries); any other
    # list on that device and context (filters, sort, page, the hardware page) reads the table and fetches only the
    # rows it shows.
    with django_assert_max_num_queries(7):
        client.get("/models/", {"fits": "geforce-rtx-4090"})
    with django_assert_max_num_queries(5):
        client.get("/models/", {"fits": "geforce-rtx-4090", "q": "llama", "sort": "name"})
    with django_assert_max_num_queries(5):
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
    page = client.get("/models/no-k-quants/")
    assert page.context["chosen"].quant.name == "Q4_0"
    with_k = client.get("/models/gemma-3-270m/")
    assert with_k.context["chosen"].quant.name == "Q4_K_M"


def test_it_starts_with_the_recommended_quant_once_a_device_is_chosen(client, catalog):
    # The verdict speaks of the quant the page recommends, not of Q4_K_M: Gemma 3 270M at F16 (about 0.54 GB of
    # weights) fits an 8 GB RTX 4060 with room to spare and decodes far above 10 tok/s, so F16 is the pick.
    page = client.get("/models/gemma-3-270m/", {"hardware": "geforce-rtx-4060"})
    assert page.context["recommendation"].recommended.quant.name == "F16"
    assert page.context["chosen"].quant.name == "F16"
    assert "F16 on GeForce RTX 4060" in page.text
    # A quant asked for in the URL wins.
    asked = client.get("/models/gemma-3-270m/", {"hardware": "geforce-rtx-4060", "quant": "Q4_K_M"})
    assert asked.context["chosen"].quant.name == "Q4_K_M"


# --- verdicts that agree with themselves (issue 10, item 6; issue 14, item 2) -----------------------------------
# Llama 3.1 8B Q4_K_M with an exact file size at 4,096 tokens, f16 KV, one user, worked out by hand:
#   weights  4,920,733,696 (the file)
#   KV         536,870,912 = 32 layers x 2 (K, V) x 8 KV heads x 128 dims x 4,096 cells x 2 bytes
#   compute    279,445,504 = ubatch 512 x (vocab 128,256 + 2 x hidden 4,096) x 4 bytes (flash attention)
#   overhead   419,943,424 = 400 MiB CUDA context + vocab 128,256 x 4 bytes of output buffer
#   token embeddings 295,681,859 in host memory (llama.cpp keeps its input layer on the CPU): 128,256 x 4,096 Q4_K
#            values x 4.5 / 8 = 295,501,824 in a 4.58 GiB (4,917,737,553.92-byte) Q4_K_M mix, scaled to the file
# needed = weights - token embeddings + KV + compute = 5,441,368,253; usable = memory - overhead; fits exactly when
# usable >= needed.
EMBED = 295_681_859
NEEDED_1 = 5_441_368_253
OVERHEAD = 419_943_424


def _exact_llama():
    from tests.factories import make_model, make_quantization

    model = make_model(name="Llama Exact", slug="llama-exact", gguf_repo="test/llama-exact-GGUF")
    make_quantization(model, name="Q4_K_M", bits_per_weight=None, file_bytes=4_920_733_696)
    return model


def _attr(text: str, css_class: str) -> str:
    """The data-bytes of the element with `css_class` (a number the page shows rounded)."""
    found = re.search(rf'class="{css_class}" data-bytes="(-?\d+)"', text)
    assert found, f"no {css_class} in the page"
    return found.group(1)


def _flat(text: str) -> str:
    """The page's text as a reader sees it: no tags, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", text))


def _needs(text: str) -> tuple[int, int]:
    found = re.search(r'Needs <b data-bytes="(\d+)">[^<]+</b> of <b data-bytes="(\d+)">', text)
    assert found, "no 'Needs X of Y usable' in the page"
    return int(found.group(1)), int(found.group(2))


@pytest.mark.parametrize(
    ("count", "memory_bytes", "label", "headroom_text", "headroom"),
    [
        # One GPU: needed + overhead = 5,441,368,253 + 419,943,424 = 5,861,311,677 bytes fits with nothing to spare.
        (1, 5_861_311_677, "Fits in GPU memory", "(0.00 GB headroom)", 0),
        (1, 5_861_311_676, "Partial offload", "(0.0 MB short)", -1),
        # Two GPUs: compute and overhead once per GPU: 2 x M >= 4,920,733,696 - 295,681,859 + 536,870,912
        # + 2 x 279,445,504 + 2 x 419,943,424 = 6,560,700,605, so M = 3,280,350,303 fits with 1 byte to spare and
        # one byte less on each GPU is 1 byte short.
        (2, 3_280_350_303, "Fits in GPU memory", "(0.0 MB headroom)", 1),
        (2, 3_280_350_302, "Partial offload", "(0.0 MB short)", -1),
    ],
)
def test_it_flips_the_page_verdict_at_the_byte_boundary(
    client, catalog, count, memory_bytes, label, headroom_text, headroom
):
    from tests.factories import make_hardware

    _exact_llama()
    make_hardware(name="Boundary GPU", slug="boundary", memory_bytes=memory_bytes)
    text = client.get(
        "/models/llama-exact/", {"hardware": "boundary", "ctx": 4096, "gpu_count": count, "quant": "Q4_K_M"}
    ).text
    assert f"Q4_K_M on Boundary GPU{' ×2' if count == 2 else ''}: <b>{label}</b>" in text
    needed, usable = _needs(text)
    assert needed == 4_920_733_696 - EMBED + 536_870_912 + count * 279_445_504
    assert usable == count * memory_bytes - count * OVERHEAD
    fits = label == "Fits in GPU memory"
    shown = int(_attr(text, "headroom" if fits else "short"))
    assert shown == abs(headroom)
    assert headroom_text in _flat(text)
    # The API answers on the same basis.
    body = client.get(
        "/api/fit", {"model": "llama-exact", "quant": "Q4_K_M", "hardware": "boundary", "gpu_count": count}
    ).json()
    assert (body["needed_bytes"], body["usable_bytes"]) == (needed, usable)
    assert body["headroom_bytes"] == usable - needed
    assert body["verdict"] == ("fits-gpu" if fits else "partial")


def test_it_shows_needs_usable_and_headroom_written_out(client, catalog):
    # On the 24 GiB card at 8,192 tokens: KV doubles to 1,073,741,824, so needed = 4,920,733,696 - 295,681,859 +
    # 1,073,741,824 + 279,445,504 = 5,978,239,165; usable = 25,769,803,776 - 419,943,424 = 25,349,860,352; headroom
    # 19,371,621,187.
    _exact_llama()
    text = client.get("/models/llama-exact/", {"hardware": "geforce-rtx-4090", "ctx": 8192}).text
    flat = _flat(text)
    assert "Q4_K_M on GeForce RTX 4090: Fits in GPU memory" in flat
    assert "Needs 5.98 GB of 25.3 GB usable (19.4 GB headroom)" in flat
    assert _needs(text) == (5_978_239_165, 25_349_860_352)
    assert _attr(text, "headroom") == "19371621187"


def test_it_gives_the_per_user_speed_of_the_serving_plan(client, catalog):
    def speeds(users: int) -> tuple[float, float]:
        text = client.get("/models/llama-3-1-8b/", {"hardware": "geforce-rtx-4090", "users": users}).text
        verdict = re.search(r'class="decode-tps">([\d.,]+) tok/s', text)
        plan = re.search(r'class="plan-per-user">([\d.,]+) tok/s', text)
        assert verdict and plan
        return float(verdict.group(1).replace(",", "")), float(plan.group(1).replace(",", ""))

    one_verdict, one_plan = speeds(1)
    four_verdict, four_plan = speeds(4)
    assert (one_verdict, four_verdict) == (one_plan, four_plan)
    assert four_verdict < one_verdict


def _moondream():
    from tests.factories import make_model, make_quantization

    # vikhyatk/moondream2 (phi-1.5 text model): 24 layers, 32 heads of 64 (no GQA), vocabulary 51,200, 2,048 context;
    # SigLIP encoder of about 430M parameters, 729 image tokens.
    model = make_model(
        name="Moondream 2",
        slug="moondream-2",
        family="Moondream",
        modality="vision-language",
        n_params=1_860_000_000,
        n_layers=24,
        hidden_size=2048,
        intermediate_size=8192,
        n_heads=32,
        n_kv_heads=32,
        head_dim=64,
        vocab_size=51_200,
        context_length=2048,
        vision_params=430_000_000,
        image_tokens=729,
    )
    make_quantization(model, name="Q4_K_M")
    return model


def test_it_counts_image_tokens_inside_the_context(client, catalog):
    _moondream()
    response = client.get("/models/moondream-2/", {"hardware": "geforce-rtx-4060", "ctx": 2048})
    # KV at -c 2048: 24 layers x 2 x 32 heads x 64 dims x 2,048 cells x 2 bytes = 402,653,184 bytes, headline and
    # breakdown alike (the 729 image tokens live inside the 2,048).
    assert response.context["kv_bytes"] == 402_653_184
    assert response.context["chosen"].result.memory.kv_cache_bytes == 402_653_184
    text = response.text
    assert "<b>KV cache: 0.40 GB</b>" in text and "KV 0.40 GB" in text
    assert 'data-text-tokens="1319"' in text and "1,319 tokens for text" in text  # 2,048 - 729


def test_it_clamps_a_context_above_the_models_maximum_and_says_so(client, catalog):
    _moondream()
    response = client.get("/models/moondream-2/", {"hardware": "geforce-rtx-4060", "ctx": 32768})
    assert response.context["options"].ctx == 2048
    assert "32,768 tokens is above Moondream 2's maximum context of 2,048" in response.text
    assert response.context["kv_bytes"] == 402_653_184
    # Lists clamp too, and say so.
    listing = client.get("/hardware/geforce-rtx-4060/", {"ctx": 32768}).text
    row = re.search(r'<tr data-model="moondream-2">.*?</tr>', listing, re.S)
    assert row and "data-ctx-clamped" in row.group(0) and "2,048 <small>(model max)</small>" in row.group(0)
    fits = {b["model"]: b for b in client.get("/api/fits", {"hardware": "geforce-rtx-4060", "ctx": 32768}).json()}
    assert (fits["moondream-2"]["ctx"], fits["moondream-2"]["ctx_clamped"]) == (2048, True)
    assert (fits["llama-3-1-8b"]["ctx"], fits["llama-3-1-8b"]["ctx_clamped"]) == (32768, False)
    body = client.get(
        "/api/fit", {"model": "moondream-2", "quant": "Q4_K_M", "hardware": "geforce-rtx-4060", "ctx": 32768}
    ).json()
    assert (body["ctx"], body["ctx_asked"], body["ctx_clamped"]) == (2048, 32768, True)
    assert body["kv_cache_bytes"] == 402_653_184


def test_it_lists_hardware_that_runs_it_at_the_chosen_settings(client, catalog):
    # Llama 8B at 131,072 tokens of f16 KV: 32 x 2 x 1,024 x 131,072 x 2 = 17,179,869,184 bytes of KV alone, more than
    # the 8 GiB card holds; the 24 GiB card still takes Q2_K (about 3.3 GB) beside it. At 4,096 both hold a quant.
    short = client.get("/models/llama-3-1-8b/", {"ctx": 4096})
    long = client.get("/models/llama-3-1-8b/", {"ctx": 131072})
    assert {d.slug for d, _ in short.context["runs_on"]} >= {"geforce-rtx-4060", "geforce-rtx-4090"}
    long_devices = {d.slug for d, _ in long.context["runs_on"]}
    assert "geforce-rtx-4090" in long_devices and "geforce-rtx-4060" not in long_devices
    assert 'data-runs-on-ctx="131072"' in long.text and "At 131,072 tokens of context" in long.text
    # A change of settings over htmx swaps the list out of band with the fit panel.
    live = client.get("/models/llama-3-1-8b/", {"ctx": 131072}, headers={"HX-Request": "true"}).text
    assert live.lstrip().startswith('<div id="fit-panel"')
    assert 'id="runs-on" class="runs-on" aria-labelledby="runs-on-h" hx-swap-oob="true"' in live
    assert 'id="howto"' in live and 'id="faq"' in live and 'id="quant-chip" hx-swap-oob="true"' in live


def test_it_shows_the_system_ram_it_uses(client, catalog):
    # The dropdown shows the 32 GB the figures assume before anything is chosen.
    page = client.get("/models/llama-3-1-8b/").text
    assert re.search(r'<option value="32" selected>32 GiB</option>', page)  # 2^30-byte units, as computed
    # F16 Llama 8B (16 GB of weights) on the 8 GiB card: with 32 GB of RAM the rest offloads; 8 GB holds nothing.
    base = {"hardware": "geforce-rtx-4060", "quant": "F16"}
    default = client.get("/models/llama-3-1-8b/", base).context["chosen"].result
    explicit = client.get("/models/llama-3-1-8b/", {**base, "ram_gb": 32}).context["chosen"].result
    small = client.get("/models/llama-3-1-8b/", {**base, "ram_gb": 8}).context["chosen"].result
    assert default == explicit and default.verdict == fit.Verdict.PARTIAL_OFFLOAD
    assert small.verdict == fit.Verdict.DOES_NOT_FIT
    page = client.get("/models/llama-3-1-8b/", {**base, "ram_gb": 8}).text
    assert "F16 on GeForce RTX 4060: <b>Does not fit</b>" in page
    # The hardware page's context <select> shows the context in use, even one that is not a round tick.
    odd = client.get("/hardware/geforce-rtx-4060/", {"ctx": 20000}).text
    assert '<option value="20000" selected>20,000 tokens</option>' in odd
    # The hardware page's links carry every setting, so following one gives the verdict the list showed.
    listing = client.get("/hardware/geforce-rtx-4060/", {"ram_gb": 64, "kv_type": "q8_0"}).text
    assert re.search(r"ctx=4096&amp;kv_type=q8_0&amp;users=1&amp;gpu_count=1&amp;ram_gb=64&amp;quant=", listing)


def _server_command(text: str) -> str:
    found = re.search(r"<code>(llama-server [^<]+)</code>", text)
    assert found, "no llama-server recipe"
    return found.group(1)


def test_it_writes_the_llama_cpp_flags_from_the_verdict(client, catalog):
    # Partial offload: -ngl is the verdict's layer count plus llama.cpp's output layer, not 99.
    partial = client.get("/models/llama-3-1-8b/", {"hardware": "geforce-rtx-4060", "quant": "F16", "ctx": 4096})
    result = partial.context["chosen"].result
    assert result.verdict == fit.Verdict.PARTIAL_OFFLOAD and 0 < result.gpu_layers < 32
    layers = re.search(r'<span class="layers">(\d+) of 32 layers and the output layer on the GPU</span>', partial.text)
    assert layers and int(layers.group(1)) == result.gpu_layers
    ngl = str(result.gpu_layers + 1)
    command = _server_command(partial.text)
    assert f" -c 4096 -ngl {ngl} " in command
    # All on the GPU: 99; a quantized KV cache and several users: -ctk/-ctv, flash attention, -c shared by -np slots.
    fits = client.get(
        "/models/llama-3-1-8b/",
        {"hardware": "geforce-rtx-4090", "quant": "Q4_K_M", "ctx": 8192, "kv_type": "q8_0", "users": 2},
    )
    assert fits.context["chosen"].result.verdict == fit.Verdict.FITS_GPU
    assert " -c 16384 -np 2 -ngl 99 -ctk q8_0 -ctv q8_0 -fa on " in _server_command(fits.text)
    # CPU only: -ngl 0.
    cpu = client.get("/models/llama-3-1-8b/", {"hardware": "ryzen-7-7700x", "quant": "Q4_K_M"})
    assert "Q4_K_M on Ryzen 7 7700X (DDR5-5200): <b>CPU only</b>" in cpu.text
    assert " -ngl 0 " in _server_command(cpu.text)
    # The API gives the same flags for the same placement.
    body = client.get(
        "/api/fit", {"model": "llama-3-1-8b", "quant": "F16", "hardware": "geforce-rtx-4060", "ctx": 4096}
    ).json()
    assert body["llama_cpp_flags"] == ["-c", "4096", "-ngl", ngl]
    assert body["gpu_layers"] == int(layers.group(1))


def test_it_offers_vllm_only_where_the_16_bit_weights_fit(client, catalog):
    # F16 Llama 8B: about 16 GB of weights; the 24 GiB card holds them, the 8 GiB card does not.
    assert 'data-runtime="vLLM"' in client.get("/models/llama-3-1-8b/", {"hardware": "geforce-rtx-4090"}).text
    assert 'data-runtime="vLLM"' not in client.get("/models/llama-3-1-8b/", {"hardware": "geforce-rtx-4060"}).text
    assert 'data-runtime="vLLM"' not in client.get("/models/llama-3-1-8b/").text
    two = client.get("/models/llama-3-1-8b/", {"hardware": "geforce-rtx-4090", "gpu_count": 2}).text
    assert "--tensor-parallel-size 2" in two


def test_it_shows_the_largest_context_that_fits_per_quant(client, catalog):
    # 8 GiB card, Q4_K_M from its exact file, f16 KV at 131,072 bytes per token: room for KV is 8,589,934,592 -
    # (4,920,733,696 - 295,681,859 token embeddings in host memory) - 279,445,504 - 419,943,424 = 3,265,493,827 bytes
    # = 24,913.7 tokens, in whole 256-cell pages 24,832.
    _exact_llama()
    text = client.get("/models/llama-exact/", {"hardware": "geforce-rtx-4060"}).text
    assert '<td class="max-ctx" data-max-ctx="24832">24,832</td>' in text
    assert "Largest context that fits" in text
    body = client.get("/api/fit", {"model": "llama-exact", "quant": "Q4_K_M", "hardware": "geforce-rtx-4060"}).json()
    assert body["max_ctx"] == 24_832


def test_it_labels_the_quality_column_as_the_reference_models(client, catalog):
    text = client.get("/models/llama-3-1-8b/").text
    assert "Quality <small>(reference model's perplexity table)</small>" in text
    assert "applied to every model, not a measurement of Llama 3.1 8B" in text


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_keeps_verdict_recipe_and_runs_on_in_step_in_the_browser(live_server, catalog):
    from tests.browser import chromium_page
    from tests.factories import make_hardware

    _exact_llama()
    make_hardware(name="Boundary GPU", slug="boundary", memory_bytes=5_861_311_677)
    with chromium_page() as page:
        page.goto(f"{live_server.url}/models/llama-exact/?hardware=boundary&ctx=4096&quant=Q4_K_M")
        verdict = page.locator(".verdict").inner_text()
        assert "Q4_K_M on Boundary GPU: Fits in GPU memory" in verdict
        assert "Needs 5.44 GB of 5.44 GB usable (0.00 GB headroom)" in " ".join(verdict.split())
        # text_content: the llama.cpp recipe sits in a collapsed <details> under Ollama's once the model has a GGUF
        # repository to pull from, and inner_text leaves hidden text out.
        assert " -c 4096 -ngl 99 " in page.locator("#howto").text_content()
        # Twice the context no longer fits the card exactly: the verdict, the recipe's -ngl and the runs-on list
        # follow without a reload (the recipe and the list are swapped out of band).
        page.select_option("select[name=ctx]", "8192")
        page.wait_for_function("() => document.querySelector('[data-runs-on-ctx=\"8192\"]') !== null")
        verdict = page.locator(".verdict").inner_text()
        assert "Partial offload" in verdict
        layers = re.search(r"(\d+) of 32 layers and the output layer on the GPU", verdict)
        assert layers
        assert f" -c 8192 -ngl {int(layers.group(1)) + 1} " in page.locator("#howto").text_content()
        assert "At 8,192 tokens of context" in page.locator("#runs-on").inner_text()


def test_it_says_where_an_imported_model_came_from_and_links_to_adding_one(client, db):
    from catalog.models import ReviewStatus
    from tests.factories import make_model, make_quantization

    model = make_model(
        slug="owner-imported",
        review_status=ReviewStatus.UNREVIEWED,
        source_repo="owner/imported",
        source_revision="0123456789abcdef0123",
    )
    make_quantization(model, name="Q4_K_M", bits_per_weight=4.89)
    page = client.get("/models/owner-imported/").text
    assert "Imported from owner/imported@0123456789ab, not reviewed" in page
    curated = make_model(slug="curated-one")
    make_quantization(curated, name="Q4_K_M", bits_per_weight=4.89)
    assert "Imported from" not in client.get("/models/curated-one/").text
    assert 'href="/models/add/"' in client.get("/models/").text


def test_the_vram_answer_leads_with_the_quant_the_page_speaks_of(client, catalog):
    import re

    page = client.get("/models/llama-3-1-8b/").text
    faq = page[page.index('id="faq"') :]
    vram = re.search(r"<summary>How much VRAM does [^<]*</summary><p>(.*?)</p>", faq, re.S).group(1)
    # Without a device: the usual Q4_K_M first, then the range from the smallest quant listed.
    assert re.search(r"At a 4,096-token context: [\d.]+ GB with Q4_K_M \(the usual choice\); from [\d.]+ GB with", vram)
    assert vram.index("Q4_K_M") < vram.index("the smallest")
