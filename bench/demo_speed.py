"""Decode speed of the demo engine against llama.cpp, side by side in one run, on the same GGUF file.

    .venv/bin/python bench/demo_speed.py [--threads 2] [--reps 5] [--n-gen 128] [--gguf PATH]

Both run llama-bench's tg test: one start token, then N single-token decode steps fed random token ids, timed
wall-clock. Repetitions alternate engine / llama.cpp so that load from other processes hits both alike. llama.cpp
runs through llama-cpp-python (`Llama.eval`, one llama_decode per token) with the same thread count. Prints each
side's tokens/sec, the ratio engine / llama.cpp, the engine's resident memory once loaded (before llama.cpp is
loaded into the same process) and its warm-start time (from the converted cache, measured in this run).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"
WORKER_TIMEOUT_S = 300


def _llama_worker(conn, gguf: str, threads: int, n_gen: int) -> None:
    import random

    from llama_cpp import Llama

    llama = Llama(model_path=gguf, n_threads=threads, n_threads_batch=threads, n_ctx=512, verbose=False)
    vocab = llama.n_vocab()
    while (seed := conn.recv()) is not None:
        rng = random.Random(seed)
        llama.reset()
        llama.eval([llama.token_bos()])
        started = time.perf_counter_ns()
        for _ in range(n_gen):
            llama.eval([rng.randrange(10, vocab)])
        conn.send(time.perf_counter_ns() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--n-gen", type=int, default=128)
    parser.add_argument("--gguf", type=Path, default=None, help="default: the packaged Gemma 3 270M Q4_K_M")
    parser.add_argument("--fp32", action="store_true", help="the engine's plain fp32 path instead of int8")
    args = parser.parse_args()

    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        sys.exit(
            "llama.cpp's Python binding is not installed: `make bench-deps` "
            f"(pip install {LLAMA_CPP_PYTHON}; it compiles llama.cpp, about ten minutes on 2 cores)"
        )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["RIGFIT_DEMO_THREADS"] = str(args.threads)
    os.environ["RIGFIT_DEMO_INT8"] = "0" if args.fp32 else "1"
    if args.gguf:
        os.environ["RIGFIT_DEMO_MODEL_PATH"] = str(args.gguf)
    import django

    django.setup()
    import psutil
    import torch

    from inference.bench import _time_gen
    from inference.engine import Engine

    engine = Engine()
    engine.load()  # converts into var/models on the very first run; warm start afterwards
    compile_started = time.perf_counter()
    fast = engine.wait_fast_path()
    backend = getattr(engine._fast, "backend", "transformers")
    waited = time.perf_counter() - compile_started
    print(f"decode step: {engine.fast_path} ({backend}) after {waited:.1f} s more")
    heavy = [name for name in ("transformers", "torch._inductor") if name in sys.modules]
    print(f"imported for the engine: {', '.join(heavy) or 'neither transformers nor torch._inductor'}")
    rss_mb = psutil.Process().memory_info().rss / 1e6
    status = engine.status()
    print(
        f"engine: {status['weights']} (output head: {status['output_head']}), loaded in {engine.load_seconds:.2f} s, "
        f"resident {rss_mb:.0f} MB"
    )
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    # llama.cpp runs in a child process: its thread pool (and the CPU affinity it may set) must not share a
    # process with torch's OpenMP threads, which on 2 cores slows both sides several-fold.
    gguf = engine.source.path
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    worker = ctx.Process(target=_llama_worker, args=(child, str(gguf), args.threads, args.n_gen), daemon=True)
    worker.start()

    def llama_tg(seed: int) -> int:
        parent.send(seed)
        # A worker that died (a failed load, a crash) never answers: wait with a bound, and say so.
        waited = 0.0
        while not parent.poll(1.0):
            waited += 1.0
            if not worker.is_alive() or waited > WORKER_TIMEOUT_S:
                sys.exit(f"the llama.cpp worker stopped answering (exit code {worker.exitcode}); see its output above")
        return parent.recv()

    del fast
    with torch.inference_mode():
        _time_gen(engine, args.n_gen, 0)  # warm-up (compiles the fused kernels on the first run)
        llama_tg(0)
        ours, theirs = [], []
        for rep in range(1, args.reps + 1):
            ours.append(args.n_gen * 1e9 / _time_gen(engine, args.n_gen, rep))
            theirs.append(args.n_gen * 1e9 / llama_tg(rep))
            print(f"rep {rep}: engine {ours[-1]:.1f} tok/s, llama.cpp {theirs[-1]:.1f} tok/s", flush=True)
    ratio = statistics.median(ours) / statistics.median(theirs)
    ours_m, theirs_m = statistics.median(ours), statistics.median(theirs)
    print(f"tg{args.n_gen} median: engine {ours_m:.1f} tok/s, llama.cpp {theirs_m:.1f} tok/s")
    parent.send(None)
    worker.join(timeout=10)
    print(f"ratio engine / llama.cpp: {ratio:.2f}x  (file {gguf.name}, {args.threads} threads)")


if __name__ == "__main__":
    main()
