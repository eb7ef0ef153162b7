from __future__ import annotations

import math
import statistics
from dataclasses import replace

import pytest

from catalog import speed_fit
from catalog.speed import PRIOR_GPU
from catalog.speed_fit import Observation, Prediction


def _decode_obs(
    source: str,
    params,
    *,
    layers: float,
    quant_s: float = 0.0,
    float_s: float = 0.0,
    kv_s: float = 0.0,
    extra: int = 0,
    backend: str = "cuda",
) -> Observation:
    """An observation whose measured time is exactly what `params` predict: synthetic truth."""
    features = (1.0, layers, quant_s, float_s, kv_s, float(extra), 0.0, 0.0)
    seconds = (
        params.overhead_s
        + params.per_layer_s * layers
        + params.quant_read_factor * quant_s
        + params.float_read_factor * float_s
        + params.kv_read_factor * kv_s
        + params.per_extra_gpu_s * extra
    )
    return Observation(backend, "gpu", source, "tg", features, 0.0, seconds)


TRUTH = replace(
    PRIOR_GPU,
    overhead_s=0.0004,
    per_layer_s=60e-6,
    quant_read_factor=1.25,
    float_read_factor=1.1,
    kv_read_factor=3.0,
    per_extra_gpu_s=0.0005,
)


def _grid(source: str, params=TRUTH, backend: str = "cuda") -> list[Observation]:
    rows = []
    for layers in (16, 32, 48, 80):
        for read in (0.001, 0.004, 0.02):
            rows.append(_decode_obs(source, params, layers=layers, quant_s=read, kv_s=read / 10, backend=backend))
            rows.append(_decode_obs(source, params, layers=layers, float_s=read * 3, backend=backend))
            rows.append(_decode_obs(source, params, layers=layers, quant_s=read, extra=3, backend=backend))
    return rows


def test_it_recovers_the_parameters_that_generated_the_runs():
    model, _ = speed_fit.fit_speed_model(_grid("a") + _grid("b"))
    fitted = model.params_for("cuda")
    # The prior pulls a little; with 144 exact runs the fit lands within a few percent of the truth.
    for name in speed_fit.DECODE_FIELDS:
        assert getattr(fitted, name) == pytest.approx(getattr(TRUTH, name), rel=0.05), name


def test_it_keeps_a_parameter_no_run_informs_at_its_prior():
    quantized_only = [obs for obs in _grid("a") + _grid("b") if obs.features[3] == 0]
    model, _ = speed_fit.fit_speed_model(quantized_only)
    assert model.params_for("cuda").float_read_factor == pytest.approx(PRIOR_GPU.float_read_factor, rel=1e-6)


def test_it_never_lets_a_source_score_itself():
    slow = replace(TRUTH, per_layer_s=200e-6)
    rows = _grid("fast-source") + _grid("slow-source", slow)
    predictions = speed_fit.leave_one_source_out(rows)
    # Each source is predicted from the other's parameters only: the slow one too fast, the fast one too slow, and
    # never exactly (a source scored with its own parameters would show 0 % here).
    slow_errors = [p.error_pct for p in predictions if p.obs.source == "slow-source"]
    fast_errors = [p.error_pct for p in predictions if p.obs.source == "fast-source"]
    assert statistics.median(slow_errors) > 20 and min(slow_errors) > 1
    assert statistics.median(fast_errors) < -15 and max(fast_errors) < -1


def test_it_reports_errors_as_estimate_over_measured():
    obs = _decode_obs("s", TRUTH, layers=32, quant_s=0.004)
    measured = obs.measured_tps
    predictions = [Prediction(obs, measured * 1.10), Prediction(obs, measured * 0.80), Prediction(obs, measured * 1.30)]
    (all_row, cuda_row) = speed_fit.error_table(predictions)
    assert (all_row.backend, cuda_row.backend) == ("all", "cuda")
    # Errors +10 %, -20 %, +30 %: |e| 10, 20, 30.
    assert cuda_row.runs == 3 and cuda_row.sources == 1
    assert cuda_row.median_abs_pct == pytest.approx(20.0)
    assert cuda_row.median_signed_pct == pytest.approx(10.0)
    # 90th percentile of (10, 20, 30), linear between ranks: 20 + 0.8 x 10.
    assert cuda_row.p90_abs_pct == pytest.approx(28.0)


def test_it_attaches_the_held_out_band_and_run_count_to_each_backend():
    rows = _grid("a") + _grid("b") + _grid("c", backend="metal") + _grid("d", backend="metal")
    model, predictions = speed_fit.fit_speed_model(rows)
    cuda = model.params_for("cuda")
    assert cuda.decode_runs == 72
    assert cuda.decode_error_pct is not None and cuda.decode_error_pct < 5  # the same truth: tiny held-out error
    assert len(predictions) == len(rows)
    assert "144" in model.basis and "4 sources" in model.basis


def test_it_fits_prompt_processing_on_tokens_and_flops():
    truth = replace(
        PRIOR_GPU,
        prefill_token_s=5e-6,
        prefill_flop_factor=2.0,
        prefill_quant_flop_factor=3.0,
        prefill_extra_gpu_token_s=PRIOR_GPU.prefill_extra_gpu_token_s,
    )
    rows = []
    for source in ("a", "b"):
        for tokens in (128, 512, 2048):
            for flop_s in (0.01, 0.1, 1.0):
                seconds = tokens * 5e-6 + flop_s * 3.0
                features = (float(tokens), 0.0, flop_s, 0.0, 0.0)
                rows.append(Observation("cuda", "gpu", source, "pp", features, 0.0, seconds))
                seconds = tokens * 5e-6 + flop_s * 2.0
                features = (float(tokens), flop_s, 0.0, 0.0, 0.0)
                rows.append(Observation("cuda", "gpu", source, "pp", features, 0.0, seconds))
    fitted = speed_fit.fit_speed_model(rows)[0].params_for("cuda")
    for name in speed_fit.PREFILL_FIELDS:
        assert getattr(fitted, name) == pytest.approx(getattr(truth, name), rel=0.05), name
    assert rows[0].measured_tps == pytest.approx(128 / (128 * 5e-6 + 0.03))


def test_an_empty_set_of_runs_gives_the_starting_points():
    model, predictions = speed_fit.fit_speed_model([])
    assert predictions == [] and model.params_for("cuda") == PRIOR_GPU
    assert math.isclose(model.params_for("cpu").quant_read_factor, 1 / 0.6)
