"""A change to the native prefill against the code before it, in one process: two builds of `native.cpp` loaded side
by side on the packaged GGUF, each prompt length timed in alternation (new, baseline, new, ...), so both meet the
same machine (its memory bandwidth and its other jobs drift by more than most changes are worth).

    .venv/bin/python bench/prefill_ab.py --baseline REV [--reps 7] [--threads 2] [--cpu-time] [--lengths 6 48 200 500]

REV is a git revision whose `inference/native.cpp` is the baseline (e.g. HEAD~1); the other build is the working
tree's. For each prompt length, prints the median wall time (or with --cpu-time the fastest calling-thread CPU time)
of a prefill that returns the last token's logits (the screened head, as the demo's first token), the ratio
new / baseline, the jobs (waits) per prefill, and whether the two builds' logits agree bit for bit.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.decode_ab import baseline_and_new  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="git revision of the baseline native.cpp")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cpu-time", action="store_true", help="calling thread's CPU time, fastest rep")
    parser.add_argument("--lengths", type=int, nargs="+", default=[6, 48, 200, 500])
    args = parser.parse_args()
    clock = time.thread_time if args.cpu_time else time.perf_counter
    pick = min if args.cpu_time else statistics.median

    from inference import loader
    from inference.gguf_model import GGUFModel, read_gguf

    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(tmp)
        libraries = baseline_and_new(args.baseline, out_dir)
        source = loader.default_source(Path("var/models"))
        gguf = read_gguf(source.path)
        models = {
            name: GGUFModel(gguf, max_len=1024, max_threads=args.threads, native=lib) for name, lib in libraries.items()
        }
        for model in models.values():
            model.set_threads(args.threads)
        rng = np.random.default_rng(0)
        what = "CPU time of the calling thread, fastest" if args.cpu_time else "wall time, median"
        print(f"baseline: native.cpp of {args.baseline}; new: the working tree; {args.threads} thread(s), {what}")
        for length in args.lengths:
            ids = [2, *rng.integers(10, 200_000, length - 1).tolist()]
            times: dict[str, list[float]] = {name: [] for name in models}
            jobs: dict[str, int] = {}
            logits: dict[str, np.ndarray] = {}
            for _ in range(args.reps):
                for name in ("new", "baseline"):
                    model = models[name]
                    started = clock()
                    logits[name] = model.forward(ids, 0)
                    times[name].append((clock() - started) * 1000)
                    jobs[name] = model.step.last_jobs()
            old, new = pick(times["baseline"]), pick(times["new"])
            diff = float(np.abs(logits["new"] - logits["baseline"]).max())
            agree = "bit for bit" if diff == 0 else f"largest logit difference {diff:.2e}"
            print(
                f"{length:>4} tokens: {old:8.1f} -> {new:8.1f} ms (new / baseline {new / old:.3f}); jobs "
                f"{jobs['baseline']} -> {jobs['new']}; logits {agree}"
            )


if __name__ == "__main__":
    main()
