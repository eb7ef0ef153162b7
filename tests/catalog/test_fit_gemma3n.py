"""Gemma 3n E2B in the fit engine against llama.cpp's own allocation report.

The fixture tests/fixtures/llamacpp_arch/gemma-3n-e2b.json holds llama.cpp's KV and compute buffers for a sparse GGUF
of the real E2B text shape (bench/validate_fit_gemma3n.py; llama.cpp 0c1e57098 via llama-cpp-python 0.3.36, CPU,
provenance in the file). llama.cpp keeps KV on the first 20 of its 30 layers (hparams.n_layer_kv_from_start = 20; the
later layers reuse the last earlier cache of their kind), 16 of them sliding over 512 tokens: its report prints two
caches, "4 layers" and "16 layers". The shape here comes from the config through catalog.importers, so the whole path
config.json -> importer -> fit engine is what is checked.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from catalog import fit
from catalog.importers import model_fields_from_hf_config
from tests.catalog.test_importers_gemma3n import gemma3n_config

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "llamacpp_arch" / "gemma-3n-e2b.json"
MIB = 1024**2
RUNS = json.loads(FIXTURE.read_text())["runs"]


def e2b_shape() -> fit.ModelShape:
    fields = model_fields_from_hf_config(gemma3n_config(30, 8192))
    names = fit.ModelShape.__dataclass_fields__
    return fit.ModelShape(**{k: v for k, v in fields.items() if k in names})


def test_the_fixture_is_llama_cpps_own_report():
    data = json.loads(FIXTURE.read_text())
    assert data["gguf"]["arch"] == "gemma3n"
    assert data["provenance"]["llama_cpp_commit"] == "0c1e57098"
    # llama.cpp allocated two caches over 20 layers, never one over 30.
    for run in RUNS:
        assert sorted(c["layers"] for c in run["kv_caches"]) == [4, 16]


@pytest.mark.parametrize(
    "run", RUNS, ids=lambda r: f"ctx{r['n_ctx']}-fa{int(r['flash_attn'])}-seq{r['n_seq']}-{r['kv_type']}"
)
def test_it_sizes_gemma_3n_kv_as_llama_cpp_allocates_it(run):
    shape = e2b_shape()
    kv = fit.kv_cache_bytes(shape, run["n_ctx"], run["kv_type"], run["n_seq"])
    assert kv == round(run["kv_buffer_mib"] * MIB)  # exact: printed with 2 decimals, all whole MiB here
    # By hand at 8,192 tokens, F16: 4 global layers x 8,192 cells + 16 sliding x 1,024 cells (512 + the 512 ubatch),
    # 2 x 2 heads x 256 x 2 bytes = 2,048 bytes per cell and layer: 64 MiB + 32 MiB = 96 MiB, as llama.cpp printed.
    if (run["n_ctx"], run["n_seq"], run["kv_type"]) == (8192, 1, "f16"):
        assert kv == (4 * 8192 + 16 * 1024) * 2048 == 96 * MIB


@pytest.mark.parametrize(
    "run", RUNS, ids=lambda r: f"ctx{r['n_ctx']}-fa{int(r['flash_attn'])}-seq{r['n_seq']}-{r['kv_type']}"
)
def test_it_sizes_gemma_3n_compute_within_five_percent(run):
    options = fit.FitOptions(
        ctx=run["n_ctx"], users=run["n_seq"], kv_type=run["kv_type"], flash_attention=run["flash_attn"]
    )
    measured = run["compute_buffer_mib"] * MIB
    assert abs(fit.compute_bytes(e2b_shape(), options, "cpu") / measured - 1) < 0.05


def test_sharing_saves_a_third_of_the_kv():
    # Without the sharing all 30 layers would keep KV: 24 sliding + 6 global at 8,192 tokens =
    # (6 x 8,192 + 24 x 1,024) x 2,048 bytes = 144 MiB, against llama.cpp's 96 MiB.
    unshared = fit.ModelShape(**{**_fields(e2b_shape()), "kv_heads_per_layer": ()})
    assert fit.kv_cache_bytes(unshared, 8192) == 144 * MIB


def _fields(shape: fit.ModelShape) -> dict[str, object]:
    return {name: getattr(shape, name) for name in fit.ModelShape.__dataclass_fields__}


# --- the per-layer token embeddings live in host memory ---------------------------------------------------------
#
# llama.cpp (0c1e57098, the sources in the llama-cpp-python 0.3.36 sdist) files per_layer_token_embd under
# LLM_TENSOR_LAYER_INPUT (src/llama-arch.cpp), and input-layer tensors take the `dev_input` buffer list, which
# llama_model::load_tensors sets to the CPU for every model ("always keep it on the CPU", src/llama-model.cpp; the
# switch on info.layer in src/llama-model-loader.cpp). So with -ngl 99 the table sits in the CPU_Mapped buffer beside
# token_embd, not in CUDA0. Its type: llama-quant.cpp's tensor_name_match_token_embd files it with token_embd, and a
# tied model's embeddings take the output's type, Q6_K for Q4_K_M (rows of 35 x 256 = 8,960 and 30 x 256 = 7,680
# values, multiples of 256, so no 32-block fallback): 6.5625 bits.
#
# Hand figures, Q4_K_M estimated from the name (no file size), 4,096 tokens, F16 KV, flash attention, one sequence:
#   body bits (Q4_K_M)  = (4.58 GiB x 8 - 525,336,576 x (6.5625 + 4.5)) / (8,030,261,248 - 2 x 525,336,576)
#                       = 4.8040607 bits (docs/fit.md, "Mixes")
#   token_embd          = 262,144 x 2,048 = 536,870,912 x 6.5625 / 8 = 440,401,920 bytes (tied: also the output)
#   E4B table           = 262,144 x 35 x 256 = 2,348,810,240 x 6.5625 / 8 = 1,926,758,400 bytes
#   E4B layers          = (6,866,172,400 - 536,870,912 - 2,348,810,240) = 3,980,491,248 x 4.8040607 / 8
#                       = 2,390,315,174 bytes
#   E2B table           = 262,144 x 30 x 256 = 2,013,265,920 x 6.5625 / 8 = 1,651,507,200 bytes
#   E2B layers          = (4,455,632,480 - 536,870,912 - 2,013,265,920) = 1,905,495,648 x 4.8040607 / 8
#                       = 1,144,264,584 bytes
#   KV (both)           = 16 sliding layers x 1,024 cells + 4 global x 4,096 cells, x 2,048 bytes = 67,108,864
#   compute (both, FA)  = 512 x (262,144 + 2 x 2,048) x 4 = 545,259,520
# GPU need = token_embd + layers + KV + compute (the table in host RAM):
#   E4B: 440,401,920 + 2,390,315,174 + 67,108,864 + 545,259,520 = 3,443,085,478; with the table on the GPU
#        + 1,926,758,400 = 5,369,843,878
#   E2B: 440,401,920 + 1,144,264,584 + 67,108,864 + 545,259,520 = 2,197,034,888; with the table 3,848,542,088
GIB = 1024**3
Q4_K_M = fit.QuantSpec("Q4_K_M")
OPTIONS = fit.FitOptions(ctx=4096)


def gemma3n_shape(layers: int, ff: int) -> fit.ModelShape:
    fields = model_fields_from_hf_config(gemma3n_config(layers, ff))
    names = fit.ModelShape.__dataclass_fields__
    return fit.ModelShape(**{k: v for k, v in fields.items() if k in names})


def gpu(memory_bytes: int) -> fit.DeviceSpec:
    return fit.DeviceSpec("test GPU", "gpu", memory_bytes, 272.0)


@pytest.mark.parametrize(
    ("layers", "ff", "table", "layer_bytes", "gpu_need"),
    [
        (35, 16384, 1_926_758_400, 2_390_315_174, 3_443_085_478),  # E4B
        (30, 8192, 1_651_507_200, 1_144_264_584, 2_197_034_888),  # E2B
    ],
)
def test_it_keeps_the_per_layer_table_off_the_gpu(layers, ff, table, layer_bytes, gpu_need):
    shape = gemma3n_shape(layers, ff)
    assert shape.per_layer_embed_params == 262_144 * layers * 256
    split = fit.weights_split(shape, Q4_K_M)
    assert (split.embed_bytes, split.output_bytes) == (440_401_920, 0)
    assert split.per_layer_embed_bytes == table == shape.per_layer_embed_params * 6.5625 / 8
    assert split.layers_bytes == layer_bytes
    mem = fit.memory_breakdown(shape, Q4_K_M, OPTIONS)
    assert mem.weights_bytes == 440_401_920 + layer_bytes + table  # the whole file still counts as weights
    # Host memory holds the input layer, token_embd and the table; the tied output layer takes token_embd's copy
    # onto the GPU (llama.cpp TENSOR_DUPLICATED), so the GPU need is unchanged by the token embeddings.
    assert mem.host_weights_bytes == 440_401_920 + table
    assert mem.output_copy_bytes == 440_401_920
    assert (mem.kv_cache_bytes, mem.compute_bytes) == (67_108_864, 545_259_520)
    result = fit.fit(shape, Q4_K_M, gpu(8 * GIB), OPTIONS)
    assert result.verdict == fit.Verdict.FITS_GPU
    assert result.needed_bytes == gpu_need
    # the same run with the table on the GPU: everything but the runtime overhead
    assert mem.total_bytes - mem.overhead_bytes == gpu_need + table
    # usable on 8 GiB: 8,589,934,592 - 400 MiB - 262,144 x 4 output buffer = 8,169,455,616
    assert result.headroom_bytes == 8_169_455_616 - gpu_need


def test_it_moves_gemma_3n_e2b_f16_onto_an_8_gib_card():
    # F16 everywhere (16 bits, no mix): token_embd 536,870,912 x 2 = 1,073,741,824; layers 1,905,495,648 x 2 =
    # 3,810,991,296; table 2,013,265,920 x 2 = 4,026,531,840. GPU need with the table in host memory
    # 1,073,741,824 + 3,810,991,296 + 67,108,864 + 545,259,520 = 5,497,101,504 <= 8,169,455,616 usable: fits.
    # Counted on the GPU as before (per_layer_embed_params 0): + 4,026,531,840 = 9,523,633,344 > usable, so the old
    # engine offloaded part of the layers.
    shape = gemma3n_shape(30, 8192)
    f16 = fit.QuantSpec("F16")
    now = fit.fit(shape, f16, gpu(8 * GIB), OPTIONS)
    before = fit.fit(dataclasses.replace(shape, per_layer_embed_params=0), f16, gpu(8 * GIB), OPTIONS)
    assert (now.verdict, now.needed_bytes) == (fit.Verdict.FITS_GPU, 5_497_101_504)
    assert (before.verdict, before.needed_bytes) == (fit.Verdict.PARTIAL_OFFLOAD, 9_523_633_344)


def test_e4b_q4_k_m_fits_8_gib_either_way_and_4_gib_only_with_the_table_on_the_host():
    # 8 GiB: 3,443,085,478 (table on the host) and 5,369,843,878 (table on the GPU) both <= 8,169,455,616: no flip.
    # 4 GiB: usable 4,294,967,296 - 420,478,976 = 3,874,488,320 >= 3,443,085,478, but < 5,369,843,878.
    shape = gemma3n_shape(35, 16384)
    assert fit.fit(shape, Q4_K_M, gpu(8 * GIB), OPTIONS).verdict == fit.Verdict.FITS_GPU
    small = fit.fit(shape, Q4_K_M, gpu(4 * GIB), OPTIONS)
    assert (small.verdict, small.usable_bytes) == (fit.Verdict.FITS_GPU, 3_874_488_320)
    # The table at body bits on the GPU (the engine before this change) did not fit: 4,853,563,835 bytes.
    before = fit.fit(dataclasses.replace(shape, per_layer_embed_params=0), Q4_K_M, gpu(4 * GIB), OPTIONS)
    assert before.verdict == fit.Verdict.PARTIAL_OFFLOAD


def test_the_table_needs_system_ram():
    # 1,926,758,400 bytes of table + 440,401,920 of token embeddings (the input layer) + 100 MiB process overhead do
    # not fit 1 GiB of system RAM: not entirely on the GPU, however large the card.
    shape = gemma3n_shape(35, 16384)
    tight = dataclasses.replace(OPTIONS, system_ram_bytes=GIB)
    assert fit.fit(shape, Q4_K_M, gpu(80 * GIB), tight).verdict != fit.Verdict.FITS_GPU
    short = dataclasses.replace(OPTIONS, system_ram_bytes=1_926_758_400 + 440_401_920 + 100 * MIB - 1)
    assert fit.fit(shape, Q4_K_M, gpu(80 * GIB), short).verdict != fit.Verdict.FITS_GPU
    roomy = dataclasses.replace(OPTIONS, system_ram_bytes=1_926_758_400 + 440_401_920 + 100 * MIB)
    assert fit.fit(shape, Q4_K_M, gpu(80 * GIB), roomy).verdict == fit.Verdict.FITS_GPU


def test_a_cpu_and_unified_memory_count_the_table_as_before():
    shape = gemma3n_shape(35, 16384)
    mem = fit.memory_breakdown(shape, Q4_K_M, OPTIONS, "cpu")
    cpu = fit.fit(shape, Q4_K_M, fit.DeviceSpec("cpu", "cpu", 16 * GIB, 80.0), OPTIONS)
    assert cpu.needed_bytes == mem.total_bytes - mem.overhead_bytes == 5_369_843_878
    mac = fit.fit(shape, Q4_K_M, fit.DeviceSpec("mac", "unified", 16 * GIB, 100.0), OPTIONS)
    assert mac.needed_bytes == 5_369_843_878


def test_a_plain_model_keeps_only_its_token_embeddings_on_the_host():
    # Llama 3 8B Q4_K_M by name: token_embd 128,256 x 4,096 Q4_K values = 525,336,576 x 4.5 / 8 = 295,501,824 bytes.
    llama = fit.ModelShape(8_030_261_248, 32, 4096, 32, 8, 128, 128_256, 14_336)
    assert fit.weights_split(llama, Q4_K_M).per_layer_embed_bytes == 0
    mem = fit.memory_breakdown(llama, Q4_K_M, OPTIONS)
    assert (mem.host_weights_bytes, mem.output_copy_bytes) == (295_501_824, 0)


@pytest.mark.django_db
def test_the_seeded_gemma_3n_models_carry_their_table():
    from io import StringIO

    from django.core.management import call_command

    from catalog import services
    from catalog.models import Model

    call_command("load_seed", "--skip-gpus", stdout=StringIO())
    e4b = Model.objects.get(slug="gemma-3n-e4b")
    # 262,144 x 35 x 256, from the seed's config (vocab_size_per_layer_input, hidden_size_per_layer_input), cited.
    assert e4b.per_layer_embed_params == 2_348_810_240
    assert e4b.sources["per_layer_embed_params"].startswith("2,348,810,240 = per_layer_token_embd")
    assert Model.objects.get(slug="gemma-3n-e2b").per_layer_embed_params == 2_013_265_920
    shape = services.shape_of(e4b)
    assert fit.fit(shape, Q4_K_M, gpu(8 * GIB), OPTIONS).needed_bytes == 3_443_085_478
    assert Model.objects.get(slug="gemma-3-270m").per_layer_embed_params is None
