"""A change to the native decode step against the step before it, in one process: two builds of `native.cpp`
loaded side by side on the packaged GGUF, decoding the same greedy text in turns of 16 steps, so both meet the same
machine (its memory bandwidth and its other jobs drift by more than most changes are worth).

    .venv/bin/python bench/decode_ab.py --baseline REV [--steps 128] [--rounds 4] [--threads 1 2] [--busy] [--bursty]

REV is a git revision whose `inference/native.cpp` is the baseline (e.g. HEAD~1); the other build is the working
tree's. For each thread count, prints the median step wall time of each build, their ratio (new / baseline), the
calling thread's CPU time per step, the synchronisation points per step, and whether the two builds' logits agree
(bit for bit, or the largest difference). --busy adds the same run with one process spinning on a core (started
and stopped by this script), as another job would; --bursty one that spins 5 ms in every 20 (a quarter of a core,
in bursts, as web requests come), which takes a thread off its core at random points of a step.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def build(source: Path, out_dir: Path, name: str) -> Path:
    from inference import native

    chosen = native.build_flags(native.cpu_flags())
    if chosen is None:
        raise SystemExit("this CPU lacks AVX2")
    _, cflags = chosen
    path = out_dir / f"{name}.so"
    subprocess.run(["c++", *cflags, str(source), "-o", str(path)], check=True)
    return path


def baseline_and_new(revision: str, out_dir: Path) -> dict:
    """The native library built from `revision`'s native.cpp and from the working tree's, loaded side by side."""
    from inference import native

    old_source = out_dir / "baseline.cpp"
    shown = subprocess.run(
        ["git", "show", f"{revision}:inference/native.cpp"], cwd=ROOT, check=True, capture_output=True, text=True
    )
    old_source.write_text(shown.stdout)
    return {
        "baseline": native.Library(build(old_source, out_dir, "baseline"), 0.0),
        "new": native.Library(build(native.SOURCE, out_dir, "new"), 0.0),
    }


def spin(stop, duty: float = 1.0, period_s: float = 0.02) -> None:
    while not stop.is_set():
        until = time.perf_counter() + duty * period_s
        while time.perf_counter() < until:
            pass
        if duty < 1.0:
            time.sleep((1.0 - duty) * period_s)


def run(models: dict, tokenizer, threads: int, steps: int, rounds: int) -> dict:
    for model in models.values():
        model.set_threads(threads)
    ids = tokenizer.encode(PROMPT)
    walls: dict[str, list[float]] = {name: [] for name in models}
    cpus: dict[str, list[float]] = {name: [] for name in models}
    jobs: dict[str, int] = {}
    largest = 0.0
    for _ in range(rounds):
        for model in models.values():
            model.forward(ids, 0, logits=0)
        token, position = ids[-1], len(ids) - 1
        for _turn in range(steps // 16):
            logits: dict[str, np.ndarray] = {}
            for name, model in models.items():
                tok, pos = token, position
                for _ in range(16):
                    started, cpu = time.perf_counter(), time.thread_time()
                    out = model.forward([tok], pos)
                    walls[name].append(time.perf_counter() - started)
                    cpus[name].append(time.thread_time() - cpu)
                    jobs[name] = model.step.last_jobs()
                    tok, pos = int(np.argmax(out)), pos + 1
                logits[name] = out
                next_token, next_position = tok, pos
            a, b = logits.values()
            largest = max(largest, float(np.abs(a - b).max()))
            token, position = next_token, next_position
    names = list(models)
    med = {name: statistics.median(walls[name]) * 1000 for name in names}
    return {
        "wall_ms": med,
        "cpu_ms": {name: statistics.median(cpus[name]) * 1000 for name in names},
        "ratio": med[names[1]] / med[names[0]],
        "jobs": jobs,
        "largest_logit_difference": largest,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="git revision of the baseline native.cpp")
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--busy", action="store_true", help="also run with one process spinning on a core")
    parser.add_argument("--bursty", action="store_true", help="also run with one process spinning 5 ms in 20")
    args = parser.parse_args()

    from inference import loader
    from inference.gguf_model import GGUFModel, read_gguf
    from inference.gguf_tokenizer import GGUFTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(tmp)
        libraries = baseline_and_new(args.baseline, out_dir)
        source = loader.default_source(Path("var/models"))
        gguf = read_gguf(source.path)
        tokenizer = GGUFTokenizer(gguf.metadata)
        top = max(args.threads)
        models = {name: GGUFModel(gguf, max_len=1024, max_threads=top, native=lib) for name, lib in libraries.items()}
        print(f"baseline: native.cpp of {args.baseline}; new: the working tree; {args.steps} steps x {args.rounds}")
        conditions = [("quiet", 0.0)]
        conditions += [("one core busy", 1.0)] if args.busy else []
        conditions += [("bursts 5/20 ms", 0.25)] if args.bursty else []
        for label, duty in conditions:
            stop = multiprocessing.Event()
            spinner = multiprocessing.Process(target=spin, args=(stop, duty), daemon=True) if duty else None
            if spinner:
                spinner.start()
            try:
                for threads in args.threads:
                    r = run(models, tokenizer, threads, args.steps, args.rounds)
                    agree = (
                        "bit for bit"
                        if r["largest_logit_difference"] == 0
                        else f"largest logit difference {r['largest_logit_difference']:.2e}"
                    )
                    print(
                        f"{label:>14} {threads} thread(s): step {r['wall_ms']['baseline']:.2f} -> "
                        f"{r['wall_ms']['new']:.2f} ms (new / baseline {r['ratio']:.3f}); caller CPU "
                        f"{r['cpu_ms']['baseline']:.2f} -> {r['cpu_ms']['new']:.2f} ms; waits per step "
                        f"{r['jobs']['baseline']} -> {r['jobs']['new']}; logits {agree}"
                    )
            finally:
                if spinner:
                    stop.set()
                    spinner.join(5)


if __name__ == "__main__":
    main()
