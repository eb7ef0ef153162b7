"""Read paths: aggregates of accepted runs for the model page, the hardware page, the leaderboard and the plots.

Only accepted runs count. Medians and spreads are computed in Python from one query each, so SQLite and
PostgreSQL give the same answer (neither has a portable median aggregate).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.cache import cache

from benchmarks.models import BenchmarkRun, ModerationDecision, Runtime, TestKind
from catalog import fit
from catalog.caching import data_version
from catalog.extensions import MeasuredKey, MeasuredSpeed
from catalog.models import Hardware, Model, Quantization
from catalog.services import fit_for


@dataclass(frozen=True, slots=True)
class Spread:
    median: float
    low: float
    high: float
    count: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread | None:
        values = sorted(values)
        if not values:
            return None
        return cls(median=statistics.median(values), low=values[0], high=values[-1], count=len(values))


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """Accepted runs of one model and quant on one device: decode (tg) and prefill (pp) speeds."""

    hardware: Hardware
    model: Model
    quant_name: str
    quantization: Quantization | None
    runs: int
    decode: Spread | None
    prefill: Spread | None
    runtimes: tuple[str, ...]
    est_decode_tps: float | None = None

    @property
    def model_id(self) -> int:
        return self.model.pk

    @property
    def estimate_ratio(self) -> float | None:
        if self.est_decode_tps and self.decode:
            return self.decode.median / self.est_decode_tps
        return None


def summarise(runs: Iterable[BenchmarkRun], *, with_estimates: bool = False) -> list[GroupSummary]:
    """Group accepted runs by (hardware, model, quant); fastest decode first."""
    groups: dict[tuple[int, int, str], list[BenchmarkRun]] = defaultdict(list)
    for run in runs:
        if run.hardware_id is None:
            continue
        groups[(run.hardware_id, run.model_id, run.quant_name)].append(run)
    summaries = []
    for members in groups.values():
        first = members[0]
        estimate = None
        if with_estimates and first.quantization is not None:
            try:
                estimate = fit_for(
                    model=first.model, quant=first.quantization, hardware=first.hardware, options=fit.FitOptions()
                ).est_decode_tps
            except ValueError:
                estimate = None
        summaries.append(
            GroupSummary(
                hardware=first.hardware,
                model=first.model,
                quant_name=first.quant_name,
                quantization=first.quantization,
                runs=len(members),
                decode=Spread.of(r.decode_tps for r in members if r.decode_tps is not None),
                prefill=Spread.of(r.prefill_tps for r in members if r.prefill_tps is not None),
                runtimes=tuple(sorted({r.runtime for r in members})),
                est_decode_tps=estimate,
            )
        )
    summaries.sort(key=lambda s: (-(s.decode.median if s.decode else 0), s.hardware.name))
    return summaries


def model_summary(model: Model) -> list[GroupSummary]:
    runs = BenchmarkRun.objects.accepted().filter(model=model).select_related("model", "quantization", "hardware")
    return summarise(runs, with_estimates=True)


def hardware_summary(hardware: Hardware) -> list[GroupSummary]:
    runs = BenchmarkRun.objects.accepted().filter(hardware=hardware).select_related("model", "quantization", "hardware")
    return summarise(runs, with_estimates=True)


def same_hardware_runs(run: BenchmarkRun, *, limit: int = 10) -> list[BenchmarkRun]:
    """Accepted runs on the same device with the same test shape, for the preview."""
    if run.hardware_id is None:
        return []
    return list(
        BenchmarkRun.objects.accepted()
        .filter(hardware_id=run.hardware_id, n_prompt=run.n_prompt, n_gen=run.n_gen)
        .select_related("model", "hardware")
        .order_by("-avg_ts")[:limit]
    )


def decode_points(*, model: Model | None = None, quant_name: str = "") -> list[BenchmarkRun]:
    """Accepted decode runs with their hardware, for the bandwidth plot and calibration."""
    queryset = (
        BenchmarkRun.objects.accepted()
        .filter(decode_tps__isnull=False, hardware__isnull=False)
        .select_related("model", "quantization", "hardware")
    )
    if model is not None:
        queryset = queryset.filter(model=model)
    if quant_name:
        queryset = queryset.filter(quant_name__iexact=quant_name)
    return list(queryset.order_by("hardware__bandwidth_gbps", "id"))


def recent_decisions(limit: int = 20) -> list[ModerationDecision]:
    """The latest decisions taken by moderators (not the automatic ones)."""
    return list(ModerationDecision.objects.filter(moderator__isnull=False).select_related("run", "moderator")[:limit])


TEST_KINDS = {TestKind.GENERATION: "decode_tps", TestKind.PROMPT: "prefill_tps"}


# llama-bench's standard tests at no depth: what the catalog's estimates (pp512, tg128 at a short context) are.
_STANDARD_TESTS = ((512, 0), (0, 128))


def measured_speeds() -> dict[MeasuredKey, MeasuredSpeed]:
    """Median decode and prompt speed of accepted llama.cpp runs per (model, quant, hardware), one GPU, depth 0,
    pp512 / tg128: registered with catalog.extensions so catalog pages can show "measured" beside an estimate.
    Cached per data version (every accepted run changes the version)."""
    key = f"rigfit:measured-speeds:{data_version()}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    decode: dict[MeasuredKey, list[float]] = defaultdict(list)
    prefill: dict[MeasuredKey, list[float]] = defaultdict(list)
    runs = (
        BenchmarkRun.objects.accepted()
        .filter(hardware__isnull=False, runtime=Runtime.LLAMA_CPP, n_depth=0)
        .exclude(notes__regex=r"GPU count: ([2-9]|[1-9][0-9])")
        .values_list("model_id", "quant_name", "hardware_id", "n_prompt", "n_gen", "avg_ts")
    )
    for model_id, quant_name, hardware_id, n_prompt, n_gen, avg_ts in runs:
        if (n_prompt, n_gen) not in _STANDARD_TESTS:
            continue
        group = (model_id, quant_name.upper(), hardware_id)
        (prefill if n_prompt else decode)[group].append(avg_ts)
    result = {
        group: MeasuredSpeed(
            decode_tps=statistics.median(decode[group]) if decode.get(group) else None,
            decode_runs=len(decode.get(group, ())),
            prefill_tps=statistics.median(prefill[group]) if prefill.get(group) else None,
            prefill_runs=len(prefill.get(group, ())),
        )
        for group in decode.keys() | prefill.keys()
    }
    cache.set(key, result, 600)
    return result
