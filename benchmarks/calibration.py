"""The speed model in force: fitted to accepted runs, with its held-out error.

Every accepted llama.cpp run on catalog hardware becomes an observation (catalog.speed_fit.observe), and the speed
model's parameters are fitted per backend (catalog.speed_fit.fit_speed_model). The error shown everywhere is
leave-one-source-out: a published table or thread is never scored with parameters fitted on it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from benchmarks.models import BenchmarkRun, Runtime
from catalog import speed_fit
from catalog.services import device_spec_of, quant_spec_of, shape_of
from catalog.speed import SpeedModel
from catalog.speed_fit import ErrorRow, Observation, Prediction

log = logging.getLogger(__name__)

# The loader of published runs writes "GPU count: N" into a run's notes (benchmarks/seed/public_runs.csv).
_GPU_COUNT = re.compile(r"GPU count: (\d+)")


def source_of(run: BenchmarkRun) -> str:
    """The unit a run is held out with: a discussion or issue thread, a repository's files, or one submitter."""
    if run.source_url:
        parts = urlsplit(run.source_url)
        path = [p for p in parts.path.split("/") if p]
        if parts.netloc.endswith("github.com") and len(path) >= 4 and path[2] in ("discussions", "issues", "pull"):
            # normiebench files each run as an issue: the collection is the source, not the issue.
            if path[2] == "issues" and path[1] == "normiebench":
                return f"{parts.netloc}/{path[0]}/{path[1]}"
            return f"{parts.netloc}/{'/'.join(path[:4])}"
        if parts.netloc.endswith("github.com") and len(path) >= 2:
            return f"{parts.netloc}/{path[0]}/{path[1]}"
        return parts.netloc + "/" + "/".join(path[:2])
    if run.submitter_id:
        return f"submitter:{run.submitter_id}"
    return f"run:{run.pk}"


def gpu_count_of(run: BenchmarkRun) -> int:
    match = _GPU_COUNT.search(run.notes or "")
    return int(match.group(1)) if match else 1


def build_number_of(run: BenchmarkRun) -> int | None:
    """llama-bench's build_number, stored as the runtime version ("2824"); None where it is not a plain number."""
    version = (run.runtime_version or "").strip().lstrip("b")
    return int(version) if version.isdigit() else None


def observation_of(run: BenchmarkRun, speed: SpeedModel | None = None) -> Observation | None:
    if run.hardware is None or run.runtime != Runtime.LLAMA_CPP:
        return None
    quant = quant_spec_of(run.quantization) if run.quantization else None
    if quant is None:
        from catalog import fit

        if fit.nominal_bits_per_weight(run.quant_name) is None:
            return None
        quant = fit.QuantSpec(name=run.quant_name.upper())
    tps = run.avg_ts
    return speed_fit.observe(
        shape=shape_of(run.model),
        quant=quant,
        device=device_spec_of(run.hardware, gpu_count_of(run)),
        backend=run.backend,
        source=source_of(run),
        n_prompt=run.n_prompt,
        n_gen=run.n_gen,
        n_depth=run.n_depth,
        measured_tps=tps,
        kv_type=run.type_k,
        flash_attention=run.flash_attn,
        speed=speed,
        label=f"{run.hardware.name} · {run.model.name} {run.quant_name} · {run.test_label}",
        build=build_number_of(run),
        date=run.test_time.date() if run.test_time else None,
        hbm=speed_fit.high_bandwidth_memory(run.hardware.memory_type),
    )


def observations_from_runs() -> list[Observation]:
    """One observation per accepted llama.cpp pp or tg run on catalog hardware that the engine can model."""
    runs = BenchmarkRun.objects.accepted().filter(hardware__isnull=False).with_relations()
    observations = []
    for run in runs.iterator(chunk_size=500):
        try:
            obs = observation_of(run)
        except ValueError:
            log.warning("Run %s cannot be modelled", run.pk, exc_info=True)
            continue
        if obs is not None:
            observations.append(obs)
    return observations


@dataclass(frozen=True, slots=True)
class Accuracy:
    model: SpeedModel
    observations: list[Observation]
    predictions: list[Prediction]
    table: list[ErrorRow]


def accuracy() -> Accuracy:
    observations = observations_from_runs()
    model, predictions = speed_fit.fit_speed_model(observations)
    return Accuracy(model, observations, predictions, speed_fit.error_table(predictions))


def calibrated_speed_model() -> SpeedModel:
    """The speed model the catalog's estimates use (registered with catalog.extensions by BenchmarksConfig)."""
    model, _ = speed_fit.fit_speed_model(observations_from_runs())
    return model
