"""Prefill by prompt length: the native step's batched prefill against the same prompt fed one token at a time,
and against llama.cpp's prompt evaluation, on the same GGUF.

    .venv/bin/python bench/prefill.py [--reps 3] [--threads N] [--cpu-time]

The batched prefill reads every weight matrix once for the whole prompt (each row multiplied with all the prompt's
quantized activations while it is in cache); one token at a time reads every matrix once per token. llama.cpp runs
in the same process after the engine (llama-cpp-python's `Llama.eval`, the prompt in one batch) when it is
installed (`make bench-deps`). Prints the median milliseconds of each and the ratios.

--cpu-time: one thread on both sides, timed by the calling thread's CPU time (`time.thread_time`) instead of the
wall clock, and the fastest repetition kept: on a machine other processes keep busy, wall-clock times at 2 threads
measure the scheduler as much as the code (llama.cpp's threads spin at a barrier while one of them waits for a core),
while the CPU time of a 1-thread prefill stays put. Both sides compute on the calling thread at 1 thread.

--gap S (default 0.2): seconds slept before each timed run, so that each starts with the other side's threads idle,
as a demo's prompt arrives to an idle engine. Without it the engine's run followed llama.cpp's directly, while
llama.cpp's OpenMP worker still spun on a core after its evaluation (libgomp spins a while before sleeping): a 6-token
prefill then took 37.7 ms (median of 9) against 31.3 ms after a 0.2 s pause (2026-12-01, 2 threads). `--gap 0` gives
the old back-to-back timing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LENGTHS = (6, 48, 200, 500)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cpu-time", action="store_true", help="1 thread, CPU time of the calling thread, fastest rep")
    parser.add_argument("--gap", type=float, default=0.2, help="seconds slept before each timed run (see above)")
    args = parser.parse_args()
    if args.cpu_time:
        args.threads = 1
    clock = time.thread_time if args.cpu_time else time.perf_counter
    pick = min if args.cpu_time else statistics.median
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["RIGFIT_DEMO_THREADS"] = str(args.threads)
    import django

    django.setup()
    import importlib.util

    import torch

    from inference.engine import Engine

    engine = Engine().load()
    model = engine.model
    model.set_threads(args.threads)
    llama = None
    if importlib.util.find_spec("llama_cpp") is not None:
        from llama_cpp import Llama

        llama = Llama(
            str(engine.source.path),
            n_ctx=1024,
            n_batch=512,
            n_threads=args.threads,
            n_threads_batch=args.threads,
            verbose=False,
        )  # n_threads_batch (the prompt's threads) defaults to every CPU
    generator = torch.Generator().manual_seed(0)

    def timed(run) -> float:
        if args.gap > 0:
            time.sleep(args.gap)
        started = clock()
        run()
        return (clock() - started) * 1000

    print(f"{'tokens':>6} {'batched ms':>10} {'stepped ms':>10} {'llama.cpp ms':>12} {'batched/llama.cpp':>17}")
    for length in LENGTHS:
        ids = [2, *torch.randint(10, 200_000, (length - 1,), generator=generator).tolist()]
        batched, stepped, theirs = [], [], []
        for _ in range(args.reps):
            batched.append(timed(lambda ids=ids: model.forward(ids, 0)))
            if length <= 48:
                last = len(ids) - 1
                stepped.append(
                    timed(
                        lambda ids=ids, last=last: [
                            model.forward([t], p, logits=int(p == last)) for p, t in enumerate(ids)
                        ]
                    )
                )
            if llama is not None:
                llama.reset()
                theirs.append(timed(lambda ids=ids: llama.eval(ids)))
        b = pick(batched)
        s = f"{pick(stepped):10.0f}" if stepped else f"{'-':>10}"
        t = pick(theirs) if theirs else float("nan")
        print(f"{length:>6} {b:10.0f} {s} {t:12.0f} {b / t:17.2f}")


if __name__ == "__main__":
    main()
