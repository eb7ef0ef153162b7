"""Calibrate the fit engine's decode efficiency from accepted runs, and report how wrong it is.

For each accepted decode run the efficiency is measured / roofline (the roofline is the fit engine's physical bound
at efficiency 1.0 for that model, quant, device bandwidth and context). Per (backend, hardware kind) the fitted
factor is the median efficiency: robust to the odd slow run, and the estimate is then factor x roofline.

The error is the median absolute percentage error (MdAPE) and the mean (MAPE) of those estimates, computed
leave-one-out (each run predicted from a factor fitted without it), beside the same errors for the engine's
current default factors (catalog.fit.SpeedModel), so the page says whether calibration helps.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

from benchmarks import selectors
from benchmarks.services import roofline_for
from catalog import fit
from catalog.services import fit_for


@dataclass(frozen=True, slots=True)
class Point:
    backend: str
    hardware_kind: str
    measured_tps: float
    roofline_tps: float
    default_estimate_tps: float | None = None

    @property
    def efficiency(self) -> float:
        return self.measured_tps / self.roofline_tps


@dataclass(frozen=True, slots=True)
class Calibration:
    backend: str
    hardware_kind: str
    runs: int
    efficiency: float  # fitted: median of measured / roofline
    efficiency_low: float
    efficiency_high: float
    loo_mdape: float | None  # leave-one-out median absolute percentage error, in percent
    loo_mape: float | None
    default_mdape: float | None  # the same, for the engine's current estimate
    default_mape: float | None


def _ape(estimate: float, measured: float) -> float:
    return abs(estimate - measured) / measured * 100


def calibrate(points: Sequence[Point]) -> list[Calibration]:
    """One calibration per (backend, hardware kind). Pure."""
    groups: dict[tuple[str, str], list[Point]] = defaultdict(list)
    for point in points:
        if point.roofline_tps > 0 and point.measured_tps > 0:
            groups[(point.backend, point.hardware_kind)].append(point)
    results = []
    for (backend, kind), members in sorted(groups.items()):
        efficiencies = [p.efficiency for p in members]
        loo_errors = []
        if len(members) >= 2:
            for i, point in enumerate(members):
                factor = statistics.median(efficiencies[:i] + efficiencies[i + 1 :])
                loo_errors.append(_ape(factor * point.roofline_tps, point.measured_tps))
        default_errors = [
            _ape(p.default_estimate_tps, p.measured_tps) for p in members if p.default_estimate_tps is not None
        ]
        results.append(
            Calibration(
                backend=backend,
                hardware_kind=kind,
                runs=len(members),
                efficiency=statistics.median(efficiencies),
                efficiency_low=min(efficiencies),
                efficiency_high=max(efficiencies),
                loo_mdape=statistics.median(loo_errors) if loo_errors else None,
                loo_mape=statistics.fmean(loo_errors) if loo_errors else None,
                default_mdape=statistics.median(default_errors) if default_errors else None,
                default_mape=statistics.fmean(default_errors) if default_errors else None,
            )
        )
    return results


def points_from_runs() -> list[Point]:
    """Calibration points from every accepted decode run on catalog hardware."""
    points = []
    for run in selectors.decode_points():
        roofline = roofline_for(run)
        if roofline is None or run.decode_tps is None:
            continue
        default = None
        if run.quantization is not None:
            try:
                options = fit.FitOptions(ctx=max(1, run.n_depth + run.n_prompt + run.n_gen))
                default = fit_for(
                    model=run.model,
                    quant=run.quantization,
                    hardware=run.hardware,
                    options=options,
                    speed=fit.DEFAULT_SPEED,
                ).est_decode_tps
            except ValueError:
                default = None
        points.append(
            Point(
                backend=run.backend,
                hardware_kind=run.hardware.kind,
                measured_tps=run.decode_tps,
                roofline_tps=roofline,
                default_estimate_tps=default,
            )
        )
    return points


# A device kind's decode efficiency is taken from community runs once this many accepted runs back it.
MIN_RUNS_TO_APPLY = 3
SPEED_FIELDS = {
    "gpu": "decode_efficiency_gpu",
    "unified": "decode_efficiency_unified",
    "cpu": "decode_efficiency_cpu",
}


def engine_efficiency(point: Point, per_token_overhead_s: float) -> float | None:
    """The efficiency that makes the engine's estimate equal this run: the engine adds a fixed per-token
    overhead to bytes / (efficiency x bandwidth), so take that overhead out of the measured time first."""
    seconds_from_bandwidth = 1 / point.measured_tps - per_token_overhead_s
    if seconds_from_bandwidth <= 0:
        return None
    return 1 / (point.roofline_tps * seconds_from_bandwidth)


def speed_model_from(points: Sequence[Point], base: fit.SpeedModel = fit.DEFAULT_SPEED) -> fit.SpeedModel:
    """The engine's speed factors with each device kind's decode efficiency replaced by the median of its
    accepted runs, where at least MIN_RUNS_TO_APPLY of them exist. Pure."""
    by_kind: dict[str, list[float]] = defaultdict(list)
    for point in points:
        efficiency = engine_efficiency(point, base.per_token_overhead_s)
        if efficiency is not None and point.hardware_kind in SPEED_FIELDS:
            by_kind[point.hardware_kind].append(efficiency)
    changes: dict[str, float] = {}
    notes = []
    for kind, efficiencies in sorted(by_kind.items()):
        if len(efficiencies) >= MIN_RUNS_TO_APPLY:
            changes[SPEED_FIELDS[kind]] = round(statistics.median(efficiencies), 4)
            notes.append(f"{kind}: {len(efficiencies)} runs")
    if not changes:
        return base
    return replace(base, **changes, basis=f"factors calibrated on community runs ({', '.join(notes)})")


def calibrated_speed_model() -> fit.SpeedModel:
    """settings.RIGFIT_SPEED_MODEL_PROVIDER: the factors the catalog's speed estimates use."""
    return speed_model_from(points_from_runs())
