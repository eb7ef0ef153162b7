"""The speed model's calibration inputs and error bands against hand calculations (issue 14: mutants of
catalog/speed_fit.py no test killed). Expected values are worked in the comments, not taken from the code."""

from __future__ import annotations

import math

import pytest

from catalog import fit, speed_fit
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
    )
    assert obs.tokens == 1.0 and obs.measured_tps == pytest.approx(25.0)


def test_a_prompt_run_becomes_its_tokens_and_flops():
    # pp512 at depth 0 on 10 TFLOPS: 2e9 x 512 + 4 x 10 x 8 x 125 x 512 x 256 = 1,029,242,880,000 FLOPs = 0.102924288 s
    # at factor 1, quantized weights (not F16/BF16/F32). 5,000 t/s = 0.1024 s for the 512 tokens.
    obs = observe(device=GPU, backend="cuda", n_prompt=512, n_gen=0, measured_tps=5000.0)
    assert (obs.test, obs.kind, obs.offset_s) == ("pp", "gpu", 0.0)
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
