"""Fit figures a person reads, checked against hand calculations (issue 14: mutants of catalog/fit.py that no test
killed). Every expected number is worked out in the comments from the model's published shape, the GGUF's measured
size or llama.cpp's documented sizing rules, never by calling the function under test for the answer."""

from __future__ import annotations

import pytest

from catalog import fit

MIB = 1024**2
GIB = 1024**3

# Llama 3.1 8B (meta-llama/Llama-3.1-8B-Instruct config.json): 32 layers, hidden 4096, 32 heads, 8 KV heads of
# 128, intermediate 14336, vocabulary 128256, untied embeddings.
LLAMA_8B = fit.ModelShape(
    n_params=8_030_261_248,
    n_layers=32,
    hidden_size=4096,
    n_heads=32,
    n_kv_heads=8,
    head_dim=128,
    vocab_size=128_256,
    intermediate_size=14336,
)
# Q4_K_M tensor bytes as llama-bench reported them (model_size, tests/fixtures/llamacpp_cuda H200 run).
Q4_K_M = fit.QuantSpec(name="Q4_K_M", tensor_bytes=4_912_898_304)
OPTIONS = fit.FitOptions(ctx=4096, kv_type="f16", users=1, flash_attention=True, ubatch=512)

WEIGHTS = 4_912_898_304
KV = 32 * 2 * 8 * 128 * 2 * 4096  # layers x (K and V) x KV heads x head_dim x 2 bytes (f16) x 4096 cells = 512 MiB
COMPUTE_FA = 512 * (128_256 + 2 * 4096) * 4  # ubatch x (vocab + 2 x hidden) x 4 bytes, flash attention: logits phase
OVERHEAD_GPU = 400 * MIB + 128_256 * 4  # CUDA context estimate + the output buffer (vocab x 4 bytes per sequence)
TOTAL = WEIGHTS + KV + COMPUTE_FA + OVERHEAD_GPU
# The token embeddings stay in host memory with every layer on the GPU (llama.cpp's input layer is on the CPU). The
# engine's share of them in the exact total: 128,256 x 4,096 Q4_K values x 4.5 / 8 = 295,501,824 bytes in a Q4_K_M mix
# of 4.58 GiB = 4,917,737,553.92 bytes at this shape, scaled to 4,912,898,304: 295,211,038.42 -> 295,211,038 (the
# GGUF's own token_embd is 295,501,824 bytes: 0.1% more).
EMBED = 295_211_038


def gpu(memory_bytes: int, count: int = 1) -> fit.DeviceSpec:
    return fit.DeviceSpec(name="test", kind="gpu", memory_bytes=memory_bytes, bandwidth_gbps=1000.0, count=count)


def test_it_adds_up_the_memory_of_llama_8b_by_hand():
    assert KV == 536_870_912 and COMPUTE_FA == 279_445_504 and OVERHEAD_GPU == 419_943_424
    mem = fit.memory_breakdown(LLAMA_8B, Q4_K_M, OPTIONS, device_kind="gpu")
    assert (mem.weights_bytes, mem.kv_cache_bytes, mem.compute_bytes, mem.overhead_bytes, mem.vision_bytes) == (
        WEIGHTS,
        KV,
        COMPUTE_FA,
        OVERHEAD_GPU,
        0,
    )
    assert mem.total_bytes == TOTAL == 6_149_158_144
    assert mem.estimated == frozenset({"compute_bytes", "overhead_bytes"})  # the weights are the measured bytes


def test_the_compute_buffer_without_flash_attention_holds_the_scores():
    # Attention phase: ubatch x cells x (heads + 1) x 4 + ubatch x (intermediate + 2 x hidden) x 4
    #   = 512 x 4096 x 33 x 4 + 512 x (14336 + 8192) x 4 = 276,824,064 + 46,137,344 = 322,961,408 > the logits phase.
    options = fit.FitOptions(ctx=4096, flash_attention=False)
    assert fit.compute_bytes(LLAMA_8B, options, "gpu") == 322_961_408
    # At 1024 cells the scores shrink (512 x 1024 x 33 x 4 + 46,137,344 = 115,343,360) and the logits phase wins.
    assert fit.compute_bytes(LLAMA_8B, fit.FitOptions(ctx=1024, flash_attention=False), "gpu") == COMPUTE_FA
    # A 128-token context reserves a 128-token graph: 128 x 136,448 x 4 = 69,861,376.
    assert fit.compute_bytes(LLAMA_8B, fit.FitOptions(ctx=128), "gpu") == 69_861_376


def test_the_overhead_per_device_kind():
    # CUDA 400 MiB, Metal 200 MiB, CPU 100 MiB, each + vocab x 4 bytes x users (2 users: 1,026,048).
    two = fit.FitOptions(users=2)
    assert fit.overhead_bytes(LLAMA_8B, two, "gpu") == 400 * MIB + 1_026_048
    assert fit.overhead_bytes(LLAMA_8B, two, "unified") == 200 * MIB + 1_026_048
    assert fit.overhead_bytes(LLAMA_8B, two, "cpu") == 100 * MIB + 1_026_048
    with pytest.raises(ValueError, match="unknown device kind"):
        fit.overhead_bytes(LLAMA_8B, two, "tpu")


def test_exact_headroom_on_one_gpu():
    result = fit.fit(LLAMA_8B, Q4_K_M, gpu(8 * GIB), OPTIONS)
    # usable = 8 GiB - overhead = 8,589,934,592 - 419,943,424 = 8,169,991,168
    # needed = weights - token embeddings + KV + compute = 5,729,214,720 - 295,211,038 = 5,434,003,682;
    # headroom = 2,735,987,486
    assert result.verdict == fit.Verdict.FITS_GPU and result.gpu_layers == 32
    assert result.usable_bytes == 8_169_991_168
    assert result.needed_bytes == 5_434_003_682
    assert result.headroom_bytes == 2_735_987_486 and result.short_bytes == 0


def test_exact_headroom_on_two_gpus():
    result = fit.fit(LLAMA_8B, Q4_K_M, gpu(4 * GIB, count=2), OPTIONS)
    # Each GPU keeps its own context and compute buffer (llama.cpp --split-mode layer):
    # usable = 2 x 4 GiB - 2 x 419,943,424 = 7,750,047,744
    # needed = 5,434,003,682 + one more compute buffer 279,445,504 = 5,713,449,186; headroom = 2,036,598,558
    assert result.verdict == fit.Verdict.FITS_GPU
    assert result.usable_bytes == 7_750_047_744
    assert result.needed_bytes == 5_713_449_186
    assert result.headroom_bytes == 2_036_598_558
    # The breakdown shown counts both GPUs' buffers: 6,149,158,144 + 279,445,504 + 419,943,424.
    assert result.memory.compute_bytes == 2 * COMPUTE_FA and result.memory.overhead_bytes == 2 * OVERHEAD_GPU
    assert result.memory.total_bytes == 6_848_547_072


def test_the_verdict_flips_at_the_exact_byte():
    # Fits with zero headroom when the GPU holds exactly the total less the host-side token embeddings; one byte
    # less and it is short by one byte.
    exact = fit.fit(LLAMA_8B, Q4_K_M, gpu(TOTAL - EMBED), OPTIONS)
    assert exact.verdict == fit.Verdict.FITS_GPU and exact.headroom_bytes == 0 and exact.short_bytes == 0
    short = fit.fit(LLAMA_8B, Q4_K_M, gpu(TOTAL - EMBED - 1), OPTIONS)
    assert short.verdict == fit.Verdict.PARTIAL_OFFLOAD and short.headroom_bytes == -1 and short.short_bytes == 1
    assert 0 < short.gpu_layers < 32


def test_on_a_cpu_the_whole_ram_counts_and_nothing_is_offloaded():
    # CPU overhead 100 MiB + 513,024 = 105,370,624; needed = weights + KV + compute = 5,729,214,720.
    needed = WEIGHTS + KV + COMPUTE_FA
    cpu = fit.DeviceSpec(name="cpu", kind="cpu", memory_bytes=needed + 105_370_624, bandwidth_gbps=60.0)
    result = fit.fit(LLAMA_8B, Q4_K_M, cpu, OPTIONS)
    assert (result.verdict, result.gpu_layers, result.headroom_bytes) == (fit.Verdict.CPU_ONLY, 0, 0)
    assert result.usable_bytes == needed and result.needed_bytes == needed
    smaller = fit.DeviceSpec(name="cpu", kind="cpu", memory_bytes=needed + 105_370_623, bandwidth_gbps=60.0)
    assert fit.fit(LLAMA_8B, Q4_K_M, smaller, OPTIONS).verdict == fit.Verdict.DOES_NOT_FIT


def test_unified_memory_lends_two_thirds_up_to_36_gb_and_three_quarters_above():
    # macOS's recommendedMaxWorkingSetSize rule as docs/fit.md states it.
    assert fit.unified_share(36 * 10**9) == pytest.approx(2 / 3)
    assert fit.unified_share(36 * 10**9 + 1) == 0.75
    mac = fit.DeviceSpec(name="mac", kind="unified", memory_bytes=16 * GIB, bandwidth_gbps=100.0)
    assert fit.device_capacity_bytes(mac) == 11_453_246_122  # int(17,179,869,184 x 2/3)
    big = fit.DeviceSpec(name="mac", kind="unified", memory_bytes=64 * GIB, bandwidth_gbps=400.0)
    assert fit.device_capacity_bytes(big) == 51_539_607_552  # 68,719,476,736 x 3/4
    assert fit.device_capacity_bytes(gpu(24 * GIB, count=3)) == 72 * GIB
    with pytest.raises(ValueError):
        fit.device_capacity_bytes(gpu(0))
    with pytest.raises(ValueError):
        fit.device_capacity_bytes(gpu(GIB, count=0))


def test_it_clamps_a_context_above_the_models_maximum():
    assert fit.clamp_ctx(8192, 4096) == (4096, True)
    assert fit.clamp_ctx(4096, 4096) == (4096, False)
    assert fit.clamp_ctx(4097, 4096) == (4096, True)
    assert fit.clamp_ctx(10, None) == (10, False)
    assert fit.clamp_ctx(10, 0) == (10, False)  # no known maximum
    assert fit.clamp_ctx(1, 1) == (1, False)
    assert fit.clamp_ctx(2, 1) == (1, True)  # a 1-token maximum is still a maximum
    with pytest.raises(ValueError, match=r"^ctx must be an integer >= 1, got 0$"):
        fit.clamp_ctx(0, 4096)


def test_kv_cells_and_sliding_window_cells_by_llama_cpps_rules():
    # n_ctx = users x ctx padded to 256; per sequence n_ctx / users padded to 256.
    assert fit.kv_cells(1) == 256 and fit.kv_cells(256) == 256 and fit.kv_cells(257) == 512
    assert fit.kv_cells(1000, users=3) == 1024  # 3000 -> 3072; 3072 / 3 = 1024
    with pytest.raises(ValueError, match=r"^users must be"):
        fit.kv_cells(1000, users=0)
    gemma = fit.ModelShape(
        n_params=268_098_176, n_layers=18, hidden_size=640, n_heads=4, n_kv_heads=1, head_dim=256,
        vocab_size=262_144, sliding_window=512, swa_layers=frozenset(i for i in range(18) if (i + 1) % 6),
    )  # fmt: skip
    # SWA layer: min(cells, window + ubatch) padded to 256: min(4096, 512 + 512) = 1024; min(768, 1024) = 768.
    assert fit.swa_cells(gemma, 4096) == 1024
    assert fit.swa_cells(gemma, 700) == 768
    assert fit.swa_cells(gemma, 4096, ubatch=100) == 768  # 612 -> 768
    assert fit.swa_cells(gemma, 4096, swa_full=True) == 4096
    assert fit.swa_cells(LLAMA_8B, 4096) == 4096  # no window
    # Gemma 3 270M at 4096: 3 global layers x 4096 cells + 15 SWA layers x 1024 cells, 2 x 256 x 2 bytes per cell.
    assert fit.kv_cache_bytes(gemma, 4096) == (3 * 4096 + 15 * 1024) * 2 * 256 * 2 == 28_311_552


def test_the_32_block_fallback_share_of_gemma_3_270m():
    # hidden 640 is not a multiple of 256. Rows of length hidden: attn q/k/v 640 x (4 + 2 x 1) x 256 = 983,040 and
    # ffn gate/up 2 x 640 x 2048 = 2,621,440; all layer weights add attn_out 4 x 256 x 640 = 655,360 and ffn_down
    # 640 x 2048 = 1,310,720: share = 3,604,480 / 5,570,560 = 11/17.
    gemma = fit.ModelShape(
        n_params=268_098_176, n_layers=18, hidden_size=640, n_heads=4, n_kv_heads=1, head_dim=256,
        vocab_size=262_144, intermediate_size=2048,
    )  # fmt: skip
    assert fit._fallback_share(gemma) == pytest.approx(11 / 17)
    # No intermediate size: 4 x hidden (2560): (983,040 + 3,276,800) / (983,040 + 655,360 + 4,915,200) = 0.65.
    no_inter = fit.ModelShape(
        n_params=268_098_176, n_layers=18, hidden_size=640, n_heads=4, n_kv_heads=1, head_dim=256, vocab_size=262_144
    )
    assert fit._fallback_share(no_inter) == pytest.approx(4_259_840 / 6_553_600)


MOE = fit.ModelShape(
    n_params=1_000_000_000, n_layers=10, hidden_size=1000, n_heads=8, n_kv_heads=8, head_dim=125, vocab_size=1000,
    n_active_params=400_000_000, n_experts=8, n_experts_used=2,
)  # fmt: skip
F16_UNKNOWN = fit.QuantSpec(name="NOT_A_QUANT")  # no mix, no figure: 16 bits per weight, the safe side


def test_moe_expert_bytes_by_hand():
    # Layers: (1e9 params - 2 x 1000 x 1000 embedding/output) x 2 bytes = 1,996,000,000 bytes = W.
    # Active share a = 0.4, k/E = 2/8: experts = W x (1 - a) / (1 - k/E) = 1,996,000,000 x 0.6 / 0.75 = 1,596,800,000.
    assert fit.weights_split(MOE, F16_UNKNOWN).layers_bytes == 1_996_000_000
    assert fit.expert_bytes(MOE, F16_UNKNOWN) == pytest.approx(1_596_800_000)
    dense = fit.ModelShape(**{**_fields(MOE), "n_experts": None, "n_experts_used": None})
    assert fit.expert_bytes(dense, F16_UNKNOWN) == 0.0
    all_used = fit.ModelShape(**{**_fields(MOE), "n_experts_used": 8})
    assert fit.expert_bytes(all_used, F16_UNKNOWN) == 0.0
    no_active = fit.ModelShape(**{**_fields(MOE), "n_active_params": None})
    assert fit.expert_bytes(no_active, F16_UNKNOWN) == 0.0
    all_active = fit.ModelShape(**{**_fields(MOE), "n_active_params": 1_000_000_000})
    assert fit.expert_bytes(all_active, F16_UNKNOWN) == 0.0
    # An active share below k/E would give more than W: capped at W.
    tiny_active = fit.ModelShape(**{**_fields(MOE), "n_active_params": 100_000_000})
    assert fit.expert_bytes(tiny_active, F16_UNKNOWN) == 1_996_000_000


def _fields(shape: fit.ModelShape) -> dict:
    return {name: getattr(shape, name) for name in shape.__dataclass_fields__}


def test_recurrent_state_bytes_by_hand():
    # A hybrid of 4 layers, layers 1 and 3 recurrent with 1,000 f32 values each: 4,000 bytes per layer per sequence.
    hybrid = fit.ModelShape(
        n_params=10**8, n_layers=4, hidden_size=256, n_heads=4, n_kv_heads=4, head_dim=64, vocab_size=1000,
        attention_layers=frozenset({0, 2}), recurrent_layers=frozenset({1, 3}), recurrent_state_values=1000,
    )  # fmt: skip
    assert fit.layer_state_bytes(hybrid, 1) == 4000
    assert fit.layer_state_bytes(hybrid, 3, users=3) == 12_000
    assert fit.layer_state_bytes(hybrid, 0, users=3) == 0
    assert fit.layer_state_bytes(hybrid, 1, users=0) == 4000  # at least one sequence
    assert fit.recurrent_state_bytes(hybrid, users=2) == 2 * 4000 * 2
    # Mamba-2 (src/llama-hparams.cpp): (d_conv - 1) x (d_inner + 2 x n_group x d_state) + d_state x d_inner
    #   = 3 x (8192 + 2 x 8 x 128) + 128 x 8192 = 30,720 + 1,048,576 = 1,079,296.
    assert fit.mamba2_state_values(d_conv=4, d_inner=8192, n_group=8, d_state=128) == 1_079_296
    # LFM2 short convolution: hidden x (L_cache - 1) = 1024 x 2.
    assert fit.shortconv_state_values(hidden_size=1024, l_cache=3) == 2048
    for bad in ({"d_conv": 0}, {"d_inner": 0}, {"n_group": 0}, {"d_state": 0}):
        with pytest.raises(ValueError):
            fit.mamba2_state_values(**{"d_conv": 4, "d_inner": 8, "n_group": 1, "d_state": 2, **bad})
    with pytest.raises(ValueError):
        fit.shortconv_state_values(hidden_size=0, l_cache=3)
    with pytest.raises(ValueError):
        fit.shortconv_state_values(hidden_size=8, l_cache=0)


def test_a_gpu_too_small_for_one_layer_falls_back_to_the_cpu_at_the_exact_byte():
    # 800 MiB of GPU: room for layers = 838,860,800 - compute 279,445,504 - overhead 419,943,424 = 139,471,872 bytes,
    # less than one layer (4.3 GB of layers / 32 + 16,777,216 of KV, over 150 MB). So the CPU runs it, needing
    # everything but the GPU overhead plus the CPU's 100 MiB: 6,149,158,144 - 419,943,424 + 104,857,600.
    cpu_need = 5_834_072_320
    small = gpu(800 * MIB)
    enough = fit.fit(LLAMA_8B, Q4_K_M, small, fit.FitOptions(ctx=4096, system_ram_bytes=cpu_need))
    assert (enough.verdict, enough.gpu_layers) == (fit.Verdict.CPU_ONLY, 0)
    short = fit.fit(LLAMA_8B, Q4_K_M, small, fit.FitOptions(ctx=4096, system_ram_bytes=cpu_need - 1))
    assert short.verdict == fit.Verdict.DOES_NOT_FIT and short.est_decode_tps is None


def test_a_moe_too_big_for_the_gpu_moves_the_experts_of_the_fewest_layers_to_ram():
    # MOE at 16 bits: weights 2,000,000,000; KV 10 x 2 x 1,000 x 2 x 4096 = 163,840,000; compute (flash)
    # 512 x (1,000 + 2 x 1,000) x 4 = 6,144,000, less the host-side token embeddings 1,000 x 1,000 x 2 = 2,000,000:
    # needed 2,167,984,000. Overhead 400 MiB + 4,000 = 419,434,400.
    # A GPU of 2,289,418,400 bytes leaves usable 1,869,984,000: 298,000,000 short. Experts 1,596,800,000, 159,680,000
    # per layer: ceil(298,000,000 / 159,680,000) = 2 layers' experts in RAM (llama.cpp --n-cpu-moe 2).
    result = fit.fit(MOE, F16_UNKNOWN, gpu(2_289_418_400), fit.FitOptions(ctx=4096))
    assert (result.needed_bytes, result.usable_bytes, result.headroom_bytes) == (
        2_167_984_000,
        1_869_984_000,
        -298_000_000,
    )
    assert (result.verdict, result.gpu_layers, result.cpu_moe_layers) == (fit.Verdict.PARTIAL_OFFLOAD, 10, 2)
    assert fit.placement_of(result) == fit._Placement(
        fit.Verdict.PARTIAL_OFFLOAD, 10, 1_869_984_000, -298_000_000, 2_167_984_000, cpu_moe_layers=2
    )


def test_kv_of_hybrid_models_counts_only_their_attention_layers():
    # 4 layers, KV on layers 0 and 2 (4 heads x 64, f16: 2 x 256 x 2 = 1,024 bytes per cell), layer 0 with a
    # 256-token window: its cells min(4096, 256 + 512) -> 768; layer 2 full: 4096. Two users: two streams each.
    hybrid = fit.ModelShape(
        n_params=10**8, n_layers=4, hidden_size=256, n_heads=4, n_kv_heads=4, head_dim=64, vocab_size=1000,
        attention_layers=frozenset({0, 2}), sliding_window=256, swa_layers=frozenset({0, 1}),
    )  # fmt: skip
    assert fit.kv_cache_bytes(hybrid, 4096) == (768 + 4096) * 1024
    assert fit.kv_cache_bytes(hybrid, 4096, users=2) == (768 + 4096) * 1024 * 2
    with pytest.raises(ValueError, match=r"^users must be"):
        fit.kv_cache_bytes(hybrid, 4096, users=0)
    # Per-layer KV heads (llama.cpp n_head_kv_arr): 2, 0, 4, 4 heads of 64 -> 512, 0, 1,024, 1,024 bytes per cell.
    varied = fit.ModelShape(
        n_params=10**8, n_layers=4, hidden_size=256, n_heads=4, n_kv_heads=4, head_dim=64, vocab_size=1000,
        kv_heads_per_layer=(2, 0, 4, 4),
    )  # fmt: skip
    assert [fit.kv_layer_bytes(varied, il, 256) for il in range(4)] == [512 * 256, 0, 1024 * 256, 1024 * 256]
    assert fit.kv_cache_bytes(varied, 256) == (512 + 1024 + 1024) * 256
    # A recurrent layer 0 counts too (4 layers, layers 0 and 3 recurrent, 10 values = 40 bytes each per sequence).
    rec = fit.ModelShape(
        n_params=10**8, n_layers=4, hidden_size=256, n_heads=4, n_kv_heads=4, head_dim=64, vocab_size=1000,
        recurrent_layers=frozenset({0, 3}), recurrent_state_values=10,
    )  # fmt: skip
    assert fit.recurrent_state_bytes(rec) == 80


def test_gemma_3_marks_every_sixth_layer_global():
    # llama.cpp set_swa_pattern(6): layer il is SWA unless (il + 1) % 6 == 0: layers 5 and 11 of 12 are global.
    assert fit.swa_layers_every(12, 6) == frozenset({0, 1, 2, 3, 4, 6, 7, 8, 9, 10})
    assert fit.swa_layers_every(4, 2) == frozenset({0, 2})  # Gemma 2: every other layer
    with pytest.raises(ValueError, match=r"^period must be"):
        fit.swa_layers_every(12, 0)
    with pytest.raises(ValueError, match=r"^l_cache must be"):
        fit.shortconv_state_values(hidden_size=8, l_cache=0)


def test_quant_names_are_read_in_any_spelling():
    assert fit.nominal_bits_per_weight(" q4-k-m ") == fit.nominal_bits_per_weight("Q4_K_M") is not None
    # A 32-block type on a row of 48 values: neither it nor Q8_0 divides 48, so the row stays F16 (16 bits).
    assert fit._type_bits("Q4_0", 48) == 16.0
    assert fit._type_bits("Q4_0", 64) == 4.5  # 18 bytes per 32 values


def test_mla_adds_its_latent_queries_to_the_compute_buffer():
    # Flash attention: logits 512 x (1,000 + 2 x 1,000) x 4 = 6,144,000, plus MLA's 512 x 8 heads x 512 x 2 x 4
    # = 16,777,216.
    mla = fit.ModelShape(
        n_params=10**9, n_layers=10, hidden_size=1000, n_heads=8, n_kv_heads=8, head_dim=125, vocab_size=1000,
        kv_lora_rank=512, qk_rope_head_dim=64,
    )  # fmt: skip
    assert fit.compute_bytes(mla, fit.FitOptions(ctx=4096), "gpu") == 6_144_000 + 16_777_216


def test_on_unified_memory_the_host_share_lives_in_the_same_memory():
    # An 8 GiB Mac lends the GPU 2/3: 5,726,623,061 B, less than the 5,729,214,720 B needed beside the Metal
    # overhead, so some layers stay on the CPU side, in the same 8 GiB (about 6.3 GB in all): a partial offload,
    # whatever the separate system RAM option says (a Mac has none).
    mac = fit.DeviceSpec(name="mac", kind="unified", memory_bytes=8 * GIB, bandwidth_gbps=100.0)
    result = fit.fit(LLAMA_8B, Q4_K_M, mac, fit.FitOptions(ctx=4096, system_ram_bytes=GIB))
    assert result.verdict == fit.Verdict.PARTIAL_OFFLOAD and 0 < result.gpu_layers < 32
    assert result.usable_bytes == 5_726_623_061 - (200 * MIB + 128_256 * 4)


def test_the_largest_context_on_a_cpu_counts_its_ram_to_the_exact_byte():
    # On a CPU the whole RAM less the CPU overhead (100 MiB + 128,256 x 4 = 105,370,624) is usable, and the run fits
    # entirely when the CPU holds it (verdict "CPU only"). At 256 tokens: KV 131,072 bytes per cell x 256 cells =
    # 33,554,432; compute (flash attention) 256 tokens x (128,256 + 2 x 4,096) x 4 = 139,722,752; needed =
    # 4,912,898,304 + 33,554,432 + 139,722,752 = 5,086,175,488. At 257 tokens the cells pad to 512 (KV 67,108,864)
    # and the graph grows to 257 tokens (140,268,544): 5,120,275,712, over by 34,100,224.
    needed_256 = WEIGHTS + 131_072 * 256 + 256 * 136_448 * 4
    assert needed_256 == 5_086_175_488
    ram = needed_256 + 105_370_624
    cpu = fit.DeviceSpec(name="cpu", kind="cpu", memory_bytes=ram, bandwidth_gbps=60.0)
    assert fit.max_context(LLAMA_8B, Q4_K_M, cpu, OPTIONS, limit=257) == 256
    assert fit.max_context(LLAMA_8B, Q4_K_M, cpu, OPTIONS, limit=256) == 256
    # one byte less RAM: not even 256 tokens
    smaller = fit.DeviceSpec(name="cpu", kind="cpu", memory_bytes=ram - 1, bandwidth_gbps=60.0)
    assert fit.max_context(LLAMA_8B, Q4_K_M, smaller, OPTIONS, limit=257) is None
    # a CPU with room to spare runs the model's whole 8,192 tokens
    roomy = fit.DeviceSpec(name="cpu", kind="cpu", memory_bytes=64 * GIB, bandwidth_gbps=60.0)
    assert fit.max_context(LLAMA_8B, Q4_K_M, roomy, OPTIONS, limit=8192) == 8192


def test_max_context_names_a_bad_limit():
    with pytest.raises(ValueError, match=r"^limit must be an integer >= 1, got 0$"):
        fit.max_context(LLAMA_8B, Q4_K_M, gpu(8 * GIB), OPTIONS, limit=0)


def _shape_with(**changes: object) -> fit.ModelShape:
    return fit.ModelShape(**{**_fields(LLAMA_8B), **changes})


@pytest.mark.parametrize(
    ("call", "name", "value"),
    [
        # A bad argument is named in the error, so a person (or the API's 422) knows which figure to fix.
        (lambda: fit.mamba2_state_values(d_conv=0, d_inner=8192, n_group=8, d_state=128), "d_conv", 0),
        (lambda: fit.mamba2_state_values(d_conv=4, d_inner=-1, n_group=8, d_state=128), "d_inner", -1),
        (lambda: fit.mamba2_state_values(d_conv=4, d_inner=8192, n_group=0, d_state=128), "n_group", 0),
        (lambda: fit.mamba2_state_values(d_conv=4, d_inner=8192, n_group=8, d_state=0), "d_state", 0),
        (lambda: fit.shortconv_state_values(hidden_size=0, l_cache=3), "hidden_size", 0),
        (lambda: fit.shortconv_state_values(hidden_size=1024, l_cache=0), "l_cache", 0),
        (lambda: fit.swa_layers_every(0, 6), "n_layers", 0),
        (lambda: fit.swa_layers_every(26, 0), "period", 0),
        (lambda: fit.kv_cells(0), "ctx", 0),
        (lambda: fit.kv_cells(4096, 0), "users", 0),
        (lambda: fit.kv_cache_bytes(LLAMA_8B, 0), "ctx", 0),
        (lambda: fit.kv_cache_bytes(LLAMA_8B, 4096, users=0), "users", 0),
        (lambda: fit.kv_cache_bytes(LLAMA_8B, 4096, ubatch=0), "ubatch", 0),
        (lambda: fit.recurrent_state_bytes(LLAMA_8B, users=0), "users", 0),
        (lambda: fit.clamp_ctx(0, 4096), "ctx", 0),
        (lambda: fit.device_capacity_bytes(gpu(GIB, count=0)), "count", 0),
        (lambda: fit.memory_breakdown(LLAMA_8B, Q4_K_M, fit.FitOptions(ctx=0)), "ctx", 0),
        (lambda: fit.memory_breakdown(LLAMA_8B, Q4_K_M, fit.FitOptions(users=0)), "users", 0),
        (lambda: fit.memory_breakdown(LLAMA_8B, Q4_K_M, fit.FitOptions(ubatch=0)), "ubatch", 0),
        (lambda: fit.kv_cache_bytes(_shape_with(n_params=0), 4096), "n_params", 0),
        (lambda: fit.kv_cache_bytes(_shape_with(n_layers=0), 4096), "n_layers", 0),
        (lambda: fit.kv_cache_bytes(_shape_with(hidden_size=0), 4096), "hidden_size", 0),
        (lambda: fit.kv_cache_bytes(_shape_with(n_heads=0), 4096), "n_heads", 0),
        (lambda: fit.kv_cache_bytes(_shape_with(n_kv_heads=0), 4096), "n_kv_heads", 0),
        (lambda: fit.kv_cache_bytes(_shape_with(head_dim=0), 4096), "head_dim", 0),
        (lambda: fit.kv_cache_bytes(_shape_with(vocab_size=0), 4096), "vocab_size", 0),
    ],
)
def test_it_names_the_argument_that_is_not_a_positive_integer(call, name, value):
    with pytest.raises(ValueError, match=rf"^{name} must be an integer >= 1, got {value}$"):
        call()


def test_it_lists_the_layers_that_hold_routed_experts():
    # Llama 4 Maverick's interleaved MoE: experts on the odd layers only. Indices outside 0 .. n_layers - 1 (here a
    # stray 10 of a 10-layer shape) name no layer and are left out; the rest come sorted.
    odd = fit.ModelShape(**{**_fields(MOE), "moe_layers": frozenset({9, 1, 7, 3, 5, 10})})
    assert fit.moe_layer_indices(odd) == (1, 3, 5, 7, 9)
    assert fit.moe_layer_indices(MOE) == tuple(range(10))  # a MoE without the list: every layer
    dense = fit.ModelShape(**{**_fields(MOE), "n_experts": None, "n_experts_used": None})
    assert fit.moe_layer_indices(dense) == ()


def test_the_token_embeddings_need_their_place_in_system_ram_to_the_byte():
    # On a discrete GPU the token embeddings stay in host memory (1,000 x 1,000 x 2 bytes = 2,000,000 at 16 bits),
    # beside the CPU process's 100 MiB (104,857,600): with every layer on an 8 GiB GPU the run fits when system RAM
    # holds 106,857,600 bytes. One byte less and nothing can run: the embeddings alone do not fit in RAM, so neither
    # does a layer more there, nor the whole model.
    dense = fit.ModelShape(**{**_fields(MOE), "n_experts": None, "n_experts_used": None, "n_active_params": None})
    enough = fit.fit(dense, F16_UNKNOWN, gpu(8 * GIB), fit.FitOptions(ctx=4096, system_ram_bytes=106_857_600))
    assert (enough.verdict, enough.gpu_layers) == (fit.Verdict.FITS_GPU, 10)
    short = fit.fit(dense, F16_UNKNOWN, gpu(8 * GIB), fit.FitOptions(ctx=4096, system_ram_bytes=106_857_599))
    assert short.verdict == fit.Verdict.DOES_NOT_FIT
    # The figures stay those of the GPU: needed = 2,000,000,000 of weights - 2,000,000 of embeddings + KV
    # 10 x 2 x 1,000 x 2 x 4,096 = 163,840,000 + compute 6,144,000 = 2,167,984,000; usable = 8 GiB - (400 MiB +
    # 1,000 x 4) = 8,170,500,192; headroom 6,002,516,192.
    assert (short.needed_bytes, short.usable_bytes, short.headroom_bytes) == (
        2_167_984_000,
        8_170_500_192,
        6_002_516_192,
    )


def test_an_unknown_name_of_the_fit_module_says_which():
    with pytest.raises(AttributeError, match=r"^module 'catalog.fit' has no attribute 'no_such_name'$"):
        fit.no_such_name  # noqa: B018


def test_the_moe_experts_moved_to_ram_must_fit_there_to_the_byte():
    # The MoE above, --n-cpu-moe 2: RAM holds the experts of layers 0 and 1 (2 x 159,680,000 = 319,360,000), the
    # token embeddings (2,000,000), a compute buffer of its own (6,144,000) and the process (104,857,600):
    # 432,361,600 bytes. With exactly that much system RAM the experts move; one byte less and they cannot.
    device = gpu(2_289_418_400)
    moved = fit.fit(MOE, F16_UNKNOWN, device, fit.FitOptions(ctx=4096, system_ram_bytes=432_361_600))
    assert (moved.verdict, moved.cpu_moe_layers) == (fit.Verdict.PARTIAL_OFFLOAD, 2)
    short = fit.fit(MOE, F16_UNKNOWN, device, fit.FitOptions(ctx=4096, system_ram_bytes=432_361_599))
    assert short.cpu_moe_layers == 0


def test_a_partial_offload_counts_each_layers_own_kv_for_every_user():
    # 4 layers of 200,000,000 bytes at 16 bits (402,000,000 params x 2 = 804,000,000, less 2,000,000 of token
    # embeddings and 2,000,000 of output matrix), 8 KV heads of 125: 1,000 values each of K and V per cell, 4,000
    # bytes. Layers 0-2 slide over 256 tokens: min(4096, 256 + 512) = 768 cells; layer 3 keeps all 4,096. Two users:
    # two streams each. Costs from the last layer down: layer 3 = 200,000,000 + 8,192 x 4,000 = 232,768,000; layers
    # 2 and 1 = 200,000,000 + 1,536 x 4,000 = 206,144,000 each. Cumulative: 232,768,000; 438,912,000; 645,056,000
    # (llama.cpp keeps the first layer on the host either way: at most 3 of 4 on the GPU).
    # The GPU's room for layers: capacity - (compute 512 x (1,000 + 2 x 1,000) x 4 = 6,144,000 + overhead 400 MiB +
    # 1,000 x 4 x 2 users = 419,438,400) - the output matrix's 2,000,000.
    swa = fit.ModelShape(
        n_params=402_000_000, n_layers=4, hidden_size=1000, n_heads=8, n_kv_heads=8, head_dim=125, vocab_size=1000,
        sliding_window=256, swa_layers=frozenset({0, 1, 2}),
    )  # fmt: skip
    fixed = 6_144_000 + 419_438_400 + 2_000_000
    options = fit.FitOptions(ctx=4096, users=2, system_ram_bytes=64 * GIB)

    def layers_with_room(room: int) -> int:
        result = fit.fit(swa, F16_UNKNOWN, gpu(room + fixed), options)
        assert result.verdict == fit.Verdict.PARTIAL_OFFLOAD
        return result.gpu_layers

    # 630,000,000 of room: 2 layers (3 need 645,056,000). Counted for one user, 3 would fit (216,384,000 +
    # 2 x 203,072,000 = 622,528,000).
    assert layers_with_room(630_000_000) == 2
    # 660,000,000: 3 layers. Were every layer counted with the full 4,096 cells, 3 would need 698,304,000.
    assert layers_with_room(660_000_000) == 3
    assert layers_with_room(438_912_000 + 1_000_000) == 2 and layers_with_room(438_912_000 - 1_000_000) == 1
    # --swa-full: every layer keeps all 4,096 cells per stream (232,768,000 each), so 660,000,000 holds 2.
    full = fit.FitOptions(ctx=4096, users=2, system_ram_bytes=64 * GIB, swa_full=True)
    assert fit.fit(swa, F16_UNKNOWN, gpu(660_000_000 + fixed), full).gpu_layers == 2
    # System RAM for the rest with 2 layers on the GPU: weights 804,000,000 + KV (32,768,000 + 3 x 6,144,000 =
    # 51,200,000) - the 438,912,000 on the GPU - the output matrix 2,000,000 (on the GPU) + a compute buffer
    # 6,144,000 + the process 104,857,600 = 525,289,600. One byte less and it cannot run (all of it on the CPU
    # would need 966,201,600).
    ram = fit.FitOptions(ctx=4096, users=2, system_ram_bytes=525_289_600)
    assert fit.fit(swa, F16_UNKNOWN, gpu(630_000_000 + fixed), ram).verdict == fit.Verdict.PARTIAL_OFFLOAD
    ram = fit.FitOptions(ctx=4096, users=2, system_ram_bytes=525_289_599)
    assert fit.fit(swa, F16_UNKNOWN, gpu(630_000_000 + fixed), ram).verdict == fit.Verdict.DOES_NOT_FIT


def test_the_compute_buffer_of_models_without_a_full_attention_layer():
    # Without flash attention: ubatch x cells x (heads + 1) x 4 + ubatch x (intermediate + 2 x hidden) x 4, or the
    # logits phase 512 x (1,000 + 2 x 256) x 4 = 3,096,576 if larger. Two layers, 4 heads, intermediate 1,024:
    # the second term is 512 x 1,536 x 4 = 3,145,728.
    base = {
        "n_params": 10**8, "n_layers": 2, "hidden_size": 256, "n_heads": 4, "n_kv_heads": 4, "head_dim": 64,
        "vocab_size": 1000, "intermediate_size": 1024,
    }  # fmt: skip
    no_fa = fit.FitOptions(ctx=4096, flash_attention=False)
    # Every layer slides over 256 tokens: the scores span min(4096, 256 + 512) = 768 cells:
    # 512 x 768 x 5 x 4 + 3,145,728 = 11,010,048; with --swa-full all 4,096:
    # 512 x 4096 x 5 x 4 + 3,145,728 = 45,088,768.
    sliding = fit.ModelShape(**base, sliding_window=256, swa_layers=frozenset({0, 1}))
    assert fit.compute_bytes(sliding, no_fa, "gpu") == 11_010_048
    assert (
        fit.compute_bytes(sliding, fit.FitOptions(ctx=4096, flash_attention=False, swa_full=True), "gpu") == 45_088_768
    )
    # A model of recurrent layers only keeps no KV; the estimate then spans the full context: 45,088,768.
    recurrent = fit.ModelShape(
        **base, attention_layers=frozenset(), recurrent_layers=frozenset({0, 1}), recurrent_state_values=10
    )
    assert fit.compute_bytes(recurrent, no_fa, "gpu") == 45_088_768
