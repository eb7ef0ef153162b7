"""Figures on one model, compare or hardware page agree with each other (a UX review found pages that contradicted
themselves): the KV figure and the memory legend, the verdict's "needs" and the quant table's "VRAM needed", the
headline chip and the verdict, the compare table's rows.

Layer counts and byte sizes below are worked out by hand from each model's config.json and checked against the
allocation llama.cpp itself printed for that shape (tests/fixtures/llamacpp_arch, provenance in each file).
"""

from __future__ import annotations

import re

import pytest

from catalog.importers import model_fields_from_hf_config
from catalog.models import Model
from tests.catalog.test_fit_nemotron_h import CONFIG as NEMOTRON_H_CONFIG
from tests.catalog.test_importers_gemma3n import gemma3n_config
from tests.factories import make_model, make_quantization

pytestmark = pytest.mark.django_db

GIB = 1024**3
MODEL_FIELDS = {f.name for f in Model._meta.get_fields()}


def model_from_config(config: dict, *, name: str, slug: str) -> Model:
    fields = {k: v for k, v in model_fields_from_hf_config(config).items() if k in MODEL_FIELDS}
    model = make_model(name=name, slug=slug, **fields)
    for quant, bits in (("Q8_0", 8.5), ("Q4_K_M", None)):
        make_quantization(model, name=quant, bits_per_weight=bits)
    return model


def data_bytes(html: str, marker: str) -> int:
    """The byte count a figure carries in data-bytes, found by the class or data attribute beside it."""
    return int(re.search(rf'{marker}[^>]*data-bytes="(-?\d+)"|data-bytes="(-?\d+)"[^>]*{marker}', html).group(1))


def test_it_states_a_hybrids_recurrent_state_beside_its_kv_cache(client, catalog):
    model_from_config(NEMOTRON_H_CONFIG, name="Nemotron-H 8B", slug="nemotron-h-8b")
    html = client.get("/models/nemotron-h-8b/", {"hardware": "geforce-rtx-4060", "ctx": 4096}).text
    # KV on the 4 attention layers of 52 only: 4 x 8 heads x 128 dims x 2 (K, V) x 2 bytes x 4,096 cells.
    kv = 4 * 8 * 128 * 2 * 2 * 4096
    assert kv == 67_108_864
    # Mamba-2 state on the 24 mixer layers, F32: conv (4 - 1) x (8,192 + 2 x 8 groups x 128) + SSM 128 x 8,192 values
    # per layer = 1,079,296 values x 4 bytes x 24 = 103,612,416 bytes (llama.cpp printed a 98.81 MiB RS buffer).
    state = ((4 - 1) * (8192 + 2 * 8 * 128) + 128 * 8192) * 4 * 24
    assert state == 103_612_416
    assert 'data-kv-layers="4"' in html and "4 of 52 layers" in html
    assert f'data-kv-bytes="{kv}"' in html and f'data-state-bytes="{state}"' in html
    assert "on the 24 recurrent layers, flat in context" in html
    # The headline and the memory legend give the same total: (67,108,864 + 103,612,416) bytes = 0.17 GB.
    assert f'data-kv-state-bytes="{kv + state}"' in html
    assert "KV cache and recurrent state: <span" in html and ">0.17 GB</span></b>" in html
    assert '<span class="k">KV + state 0.17 GB</span>' in html


def test_it_counts_only_the_layers_that_keep_a_kv_cache(client, catalog):
    # Gemma 3n E2B's text shape: llama.cpp keeps KV on the first 20 of 30 layers, 16 of them sliding (its report
    # prints a 4-layer and a 16-layer cache: tests/fixtures/llamacpp_arch/gemma-3n-e2b.json).
    model_from_config(gemma3n_config(30, 8192), name="Gemma 3n E2B", slug="gemma-3n-e2b")
    html = client.get("/models/gemma-3n-e2b/", {"hardware": "geforce-rtx-4060", "ctx": 8192}).text
    assert 'data-kv-layers="20"' in html and "20 of 30 layers" in html
    assert "16 of them sliding-window layers capped at 512" in html
    # 4 global layers x 8,192 cells + 16 sliding x 1,024 cells (512 + the 512 ubatch), 2,048 bytes a cell: 96 MiB.
    assert "<b>KV cache: 0.10 GB</b>" in html  # 100,663,296 bytes


def test_it_shows_in_the_quant_table_the_vram_the_verdict_needs(client, catalog):
    # Gemma 3n keeps its per-layer embeddings in system RAM on a discrete GPU: the verdict's "needs" leaves them out,
    # and the quant table's "VRAM needed" must too (it showed the whole model, 15.0 GB, beside "Fits in GPU memory"
    # on a 12 GB card). On an 8 GiB card: VRAM needed = needs + runtime overhead, overhead = 8 GiB - usable.
    model_from_config(gemma3n_config(30, 8192), name="Gemma 3n E2B", slug="gemma-3n-e2b")
    html = client.get("/models/gemma-3n-e2b/", {"hardware": "geforce-rtx-4060", "ctx": 8192, "quant": "Q8_0"}).text
    verdict = re.search(r'<span class="needs">Needs <b data-bytes="(\d+)">.*?</b> of <b data-bytes="(\d+)">', html)
    needs, usable = int(verdict.group(1)), int(verdict.group(2))
    row = re.search(r'<tr class="chosen">.*?</tr>', html, re.S).group(0)
    vram = int(re.search(r'<td class="vram" data-bytes="(\d+)">', row).group(1))
    assert vram == needs + (8 * GIB - usable)
    # The legend lists every weight; the page says how much of it goes on the GPU, and the sum is the need.
    gpu_weights = data_bytes(html, 'class="gpu-weights"')
    assert 0 < gpu_weights < needs
    assert "go on the GPU: llama.cpp keeps the input embeddings in system RAM" in html


def test_the_chip_gives_the_verdicts_needs_when_nothing_is_recommended(client, catalog):
    # Llama 8B at 131,072 tokens on an 8 GiB card with 8 GB of system RAM: the KV cache alone is 32 layers x 8 heads
    # x 128 dims x 2 x 2 bytes x 131,072 = 17.2 GB, so no quant fits and none is recommended. The chip then speaks of
    # the verdict's quant on the verdict's basis (needs of usable), not of the table's VRAM figure (which adds the
    # runtime overhead): the two once read 80.4 GB and 80.0 GB on one page.
    response = client.get("/models/llama-3-1-8b/", {"hardware": "geforce-rtx-4060", "ctx": 131072, "ram_gb": 8})
    assert response.context["recommendation"].recommended is None
    html = response.text
    chip = re.search(r'<li id="quant-chip"[^>]*>(.*?)</li>', html, re.S).group(1)
    needs = re.search(r'<span class="needs">Needs <b data-bytes="(\d+)">', html).group(1)
    assert int(needs) > 32 * 8 * 128 * 2 * 2 * 131072  # the KV cache and then some
    verdict = re.search(
        r'<span class="needs">Needs <b data-bytes="\d+">(.*?)</b> of <b data-bytes="\d+">(.*?)</b>', html
    )
    assert chip.startswith("<b>Q4_K_M</b> on GeForce RTX 4060 needs")
    assert f"<b>{verdict.group(1)}</b> of {verdict.group(2)} usable at 131,072 ctx" in chip


def test_the_compare_table_labels_its_corner_and_rows_for_screen_readers(client, catalog):
    html = client.get("/compare/", {"models": ["llama-3-1-8b", "gemma-3-270m"], "hardware": "geforce-rtx-4060"}).text
    assert '<th scope="col"><span class="visually-hidden">Figure</span></th>' in html
    table = re.search(r"<tbody>.*?</tbody>", html, re.S).group(0)
    assert table.count("<th>") == 0 and table.count('<th scope="row">') >= 10


def test_the_compare_tables_common_quant_needs_agree_with_the_recommended_row(client, catalog):
    # Both rows give "needs X of Y" on the verdict's basis; the common-quant row once gave the table's VRAM figure
    # (overhead included) under the same word.
    response = client.get("/compare/", {"models": ["llama-3-1-8b", "gemma-3-270m"], "hardware": "geforce-rtx-4060"})
    html = response.text
    common = re.findall(r'<td data-common-quant="([^"]*)">(.*?)</td>', html, re.S)
    recommended = re.findall(r'data-recommended="([^"]*)">(.*?)</td>', html, re.S)
    assert len(common) == 2 and len(recommended) == 2
    for (c_quant, c_cell), (r_quant, r_cell) in zip(common, recommended, strict=True):
        assert "VRAM" in c_cell and "needs" in c_cell
        if c_quant == r_quant:
            needs = re.search(r"needs (\S+ GB of \S+ GB)", r_cell).group(1)
            assert f"needs {needs}" in c_cell


@pytest.mark.parametrize(
    ("slug", "shown"), [("geforce-rtx-4060", True), ("apple-m2-max-32gb", False), ("ryzen-7-7700x", False)]
)
def test_the_hardware_page_asks_for_system_ram_only_beside_a_discrete_gpu(client, catalog, slug, shown):
    # A CPU's RAM and a Mac's unified memory are the device itself; a "System RAM: 32 GB" control on a 64 GB CPU's
    # page changed nothing and contradicted the chip above it.
    html = client.get(f"/hardware/{slug}/").text
    assert ('name="ram_gb"' in html) is shown


@pytest.mark.parametrize(("slug", "stated"), [("geforce-rtx-4060", True), ("apple-m2-max-32gb", False)])
def test_the_model_list_states_the_system_ram_it_assumes_beside_a_gpu(client, catalog, slug, stated):
    # "Runs on" an 8 GiB card includes partial offloads whose rest sits in system RAM; the list has no RAM control,
    # so it says what it assumes: the fit engine's default, 32 GiB (FitOptions.system_ram_bytes = 32 x 2^30).
    html = client.get("/models/", {"fits": slug}).text
    assert ('with <span data-system-ram-gib="32">32 GiB</span> of system RAM' in html) is stated


def test_the_system_ram_choices_are_labelled_in_the_units_computed(client, catalog):
    # ram_gb=32 means 32 x 2^30 bytes in the figures; the option read "32 GB" on a site whose GB is 10^9 bytes.
    html = client.get("/models/llama-3-1-8b/").text
    assert '<option value="32" selected>32 GiB</option>' in html and ">32 GB</option>" not in html


def test_the_add_model_page_gives_the_header_cap_in_the_unit_it_is(client, catalog):
    # catalog.hf.WEB_LIMITS reads at most 32 x 2^20 bytes of a GGUF header; filesizeformat wrote "32.0 MB" (binary
    # units under a decimal name) on a site whose MB is 10^6 bytes.
    html = client.get("/models/add/").text
    assert "up to 32 MiB." in html and "32.0 MB" not in html


def test_the_faq_gives_the_quant_tables_vram_figures(client, catalog):
    # "How much VRAM" said 8.37 GB for the recommended Q6_K while the table beside it said 7.93 GB: the answer now
    # quotes the table's own column for its lead quant, its smallest and its largest.
    html = client.get("/models/llama-3-1-8b/", {"hardware": "geforce-rtx-4060", "ctx": 8192}).text
    vram = dict(
        re.findall(
            r'<td><a href="[^"]*">([\w_]+)</a></td>.*?<td class="vram" data-bytes="\d+">([^<]+)</td>', html, re.S
        )
    )
    answer = re.search(r"How much VRAM does .*?</summary>\s*<p>(.*?)</p>", html, re.S).group(1)
    lead, smallest, largest = re.search(
        r"At an 8,192-token context: (\S+ GB) with \w+ .*?from (\S+ GB) with Q2_K, .*?up to (\S+ GB) with F16", answer
    ).groups()
    assert (smallest, largest) == (vram["Q2_K"], vram["F16"])
    assert lead in vram.values()


@pytest.mark.parametrize(
    ("ctx", "article"), [(4096, "a"), (8192, "an"), (16384, "a"), (131072, "a"), (2048, "a"), (512, "a")]
)
def test_the_faq_reads_its_context_with_the_right_article(client, catalog, ctx, article):
    # "at a 8,192-token context": eight is read with a vowel sound; the others are not (four, sixteen, one hundred...).
    html = client.get("/models/llama-3-1-8b/", {"ctx": ctx}).text
    assert f"At {article} {ctx:,}-token context" in html


def test_the_compare_page_states_the_system_ram_its_partial_offloads_use(client, catalog):
    # Partial-offload verdicts on a GPU depend on system RAM, which compare has no control for: 32 GiB by default
    # (FitOptions.system_ram_bytes = 32 x 2^30), 64 when the link says ram_gb=64.
    base = {"models": ["llama-3-1-8b", "gemma-3-270m"], "hardware": "geforce-rtx-4060"}
    assert "<span data-system-ram-gib>32 GiB</span> of system RAM" in client.get("/compare/", base).text
    assert "<span data-system-ram-gib>64 GiB</span>" in client.get("/compare/", {**base, "ram_gb": 64}).text
    on_a_mac = client.get("/compare/", {**base, "hardware": "apple-m2-max-32gb"}).text
    assert "data-system-ram-gib" not in on_a_mac


def test_a_macs_page_states_its_fp16_rate_once(client, catalog):
    # Apple GPUs have no matrix units: matrix_tflops = fp16_tflops (20 cores x 128 ALUs x 2 x 1,470 MHz = 7.53 for
    # the M4 Pro), and the page showed "7.5 FP16 TFLOPS" and "7.5 GPU FP16 TFLOPS" side by side.
    from tests.factories import make_hardware

    make_hardware(
        name="Apple M4 Pro 48GB",
        slug="apple-m4-pro-48gb",
        vendor="Apple",
        kind="unified",
        memory_bytes=48 * GIB,
        bandwidth_gbps=273.0,
        fp16_tflops=7.53,
        matrix_tflops=7.53,
    )
    html = client.get("/hardware/apple-m4-pro-48gb/").text
    assert html.count("TFLOPS</li>") == 1 and "<b>7.5</b> FP16 TFLOPS" in html
    gpu = client.get("/hardware/geforce-rtx-4060/").text  # a GPU's page: the weights on the GPU, as its verdicts
    assert "Needs = weights on the GPU (llama.cpp keeps the input embeddings in system RAM)" in gpu
    assert "Needs = weights + KV cache" in html  # a Mac keeps them in its one memory


def test_vram_bytes_counts_only_the_weights_on_the_gpu():
    import dataclasses

    from catalog import fit
    from catalog.templatetags.rigfit import vram_bytes

    # 1,000 bytes of weights, 100 of them input embeddings kept in host RAM, a 40-byte tied output copy on the GPU:
    # 940 bytes of weights on the GPU; total 1,280 = 1,000 + 200 KV + 50 compute + 30 overhead -> 1,280 - 60 = 1,220.
    mem = fit.MemoryBreakdown(
        weights_bytes=1000,
        kv_cache_bytes=200,
        compute_bytes=50,
        overhead_bytes=30,
        vision_bytes=0,
        total_bytes=1280,
        host_weights_bytes=100,
        output_copy_bytes=40,
    )
    assert vram_bytes(mem) == 1220
    # Untied embeddings (no output copy): the host weights come off, nothing is added: 1,280 - 100 = 1,180.
    assert vram_bytes(dataclasses.replace(mem, output_copy_bytes=0)) == 1180
    assert vram_bytes(None) is None


@pytest.mark.parametrize(
    ("n", "article"),
    [(8, "an"), (11, "an"), (18, "an"), (80, "an"), (800, "an"), (8192, "an"), (11_000, "an"), (18_432, "an"),
     (1, "a"), (110, "a"), (1_100, "a"), (4096, "a"), (16_384, "a"), (131_072, "a"), (1_048_576, "a")],
)  # fmt: skip
def test_the_faq_article_follows_how_the_number_is_read(n, article):
    from catalog.faq import _article

    assert _article(n) == article
