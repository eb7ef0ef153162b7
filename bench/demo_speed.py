"""The demo engine against llama.cpp on the same GGUF, quiet and with one core kept busy, side by side in one run.

    .venv/bin/python bench/demo_speed.py [--threads N] [--reps 5] [--n-gen 128] [--gguf PATH] [--ttft-reps 3]

Each repetition runs, in this order: the engine and llama.cpp on a quiet machine, then the same two while a process
this script starts keeps one core busy (a Python busy loop, stopped after the pair). Both sides generate greedily
from the same story prompt, up to N new tokens: the engine through `Engine.stream` (what the demo page runs: its
thread choice, sampling, detokenizing, the wall-time cap), llama.cpp through llama-cpp-python's `Llama.generate`
(one `llama_decode` per token, its own greedy sampler) in a child process with the same thread count. Decode speed
is (tokens after the first) / (time after the first), as the demo reports it; time to first token includes the
prompt. Prints medians, the ratios engine / llama.cpp quiet and busy, the engine's busy / quiet, whether any answer
was cut short by the wall-time cap, the threads the engine chose, then time to first token at 6, 48, 200 and 500
prompt tokens (quiet), cold start (a fresh cache directory in a child process: the packaged GGUF assembled and the
C++ step compiled, the compile reported apart) and warm start (split into read, build, warm-up), and resident memory.
Other processes on the machine hit both sides alike: the ratios are the figures to compare, not the absolute speeds.
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
PROMPT = "Write a long story about a lighthouse keeper who finds a message in a bottle. Describe every day in detail."
TTFT_LENGTHS = (6, 48, 200, 500)
FILLER = (
    "The committee met on a grey morning to review the harbour accounts, the repairs to the north pier, the "
    "timetable of the ferries and the letters that residents had written about noise, lighting and parking. "
)


def _busy_loop() -> None:  # the other process: one core's worth of work until terminated
    while True:
        pass


def _llama_worker(conn, gguf: str, threads: int) -> None:
    from llama_cpp import Llama

    llama = Llama(model_path=gguf, n_threads=threads, n_threads_batch=threads, n_ctx=1024, verbose=False)
    eos = llama.token_eos()
    while (job := conn.recv()) is not None:
        prompt, n_new = job
        tokens = llama.tokenize(prompt.encode(), add_bos=True, special=False)
        # generate(reset=True) keeps the cached prefix of the last prompt (its "prefix-match hit"): a repeated prompt
        # would then time one token, not the prompt. reset() empties the cache, as the engine starts from nothing.
        llama.reset()
        started = time.perf_counter()
        first_at = last_at = started
        count = 0
        for token in llama.generate(tokens, temp=0.0, top_k=1, reset=True):
            now = time.perf_counter()
            if token == eos:
                break
            count += 1
            if count == 1:
                first_at = now
            last_at = now
            if count >= n_new:
                break
        decode_s = last_at - first_at
        conn.send(
            {
                "prompt_tokens": len(tokens),
                "tokens": count,
                "ttft_ms": (first_at - started) * 1000,
                "decode_tps": (count - 1) / decode_s if count > 1 and decode_s > 0 else 0.0,
            }
        )


def _prompt_of(tokenizer, n_tokens: int) -> str:
    """A prompt of about n_tokens tokens (BOS included) cut from repeated prose."""
    start = len(list(tokenizer("")["input_ids"]))  # the special tokens the tokenizer adds (Gemma: BOS)
    ids = list(tokenizer(FILLER * (n_tokens // 20 + 2))["input_ids"])
    return tokenizer.decode(ids[start : start + n_tokens - start])


_COLD_START = """
import json, os, sys, time
started = time.perf_counter()
import django
django.setup()
from inference.engine import Engine
from inference import native
engine = Engine().load()
print(json.dumps({"total_s": time.perf_counter() - started, "split": engine.load_split,
                  "compile_s": native.load().build_seconds, "torch": "torch" in sys.modules}))
"""


def _start_in_child(cache_dir: Path | None) -> dict:
    """A fresh process loading the engine (with `cache_dir`: an empty cache, so the C++ step is compiled)."""
    import json
    import subprocess

    env = dict(os.environ)
    if cache_dir is not None:
        env["RIGFIT_DEMO_CACHE_DIR"] = str(cache_dir)
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", _COLD_START], cwd=root, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--n-gen", type=int, default=128)
    parser.add_argument("--gguf", type=Path, default=None, help="default: the packaged Gemma 3 270M Q4_K_M")
    parser.add_argument("--ttft-reps", type=int, default=3, help="repetitions per prompt length (0: skip)")
    parser.add_argument("--busy-settle-s", type=float, default=0.5, help="how long the busy process runs first")
    args = parser.parse_args()

    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        sys.exit(
            "llama.cpp's Python binding is not installed: `make bench-deps` "
            f"(pip install {LLAMA_CPP_PYTHON}; it compiles llama.cpp, about ten minutes on 2 cores)"
        )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["RIGFIT_DEMO_THREADS"] = str(args.threads)
    os.environ.setdefault("RIGFIT_DEMO_MAX_NEW_TOKENS", str(max(256, args.n_gen)))
    if args.gguf:
        os.environ["RIGFIT_DEMO_MODEL_PATH"] = str(args.gguf)
    import django

    django.setup()
    import psutil

    from inference.engine import Engine, GenerationParams

    engine = Engine()
    engine.load()  # builds the C++ step on the very first run (cached by torch); a warm start afterwards
    status = engine.status()
    split = getattr(engine, "load_split", {}) or {}
    split_text = ", ".join(f"{k.removesuffix('_s')} {v:.2f} s" for k, v in split.items()) or "not split"
    heavy = [name for name in ("transformers", "torch._inductor") if name in sys.modules]
    print(f"decode step: native ({status['fast_path']}); imported: {', '.join(heavy) or 'neither'}")
    rss_mb = psutil.Process().memory_info().rss / 1e6
    print(f"warm start {engine.load_seconds:.2f} s ({split_text}); resident {rss_mb:.0f} MB")
    print(f"engine: {status['weights']} (output head: {status['output_head']}); at most {args.threads} threads")

    # llama.cpp runs in a child process: its thread pool must not share a process with the engine's threads.
    gguf = engine.source.path
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    worker = ctx.Process(target=_llama_worker, args=(child, str(gguf), args.threads), daemon=True)
    worker.start()

    def llama(prompt: str, n_new: int) -> dict:
        parent.send((prompt, n_new))
        waited = 0.0
        while not parent.poll(1.0):  # a worker that died never answers: wait with a bound, and say so
            waited += 1.0
            if not worker.is_alive() or waited > WORKER_TIMEOUT_S:
                sys.exit(f"the llama.cpp worker stopped answering (exit code {worker.exitcode}); see its output above")
        return parent.recv()

    def ours(prompt: str, n_new: int) -> dict:
        _, metrics = engine.generate_text(GenerationParams(prompt=prompt, max_new_tokens=n_new))
        return {
            "prompt_tokens": metrics.prompt_tokens,
            "tokens": metrics.tokens_generated,
            "ttft_ms": metrics.ttft_ms,
            "decode_tps": metrics.decode_tps,
            "stop": metrics.stop_reason,
            "threads": getattr(metrics, "threads", []),
        }

    results: dict[tuple[str, str], list[dict]] = {(w, s): [] for w in ("engine", "llama") for s in ("quiet", "busy")}
    ours(PROMPT, 8)  # warm-up, both sides
    llama(PROMPT, 8)
    for rep in range(1, args.reps + 1):
        for state in ("quiet", "busy"):
            hog = None
            if state == "busy":
                hog = ctx.Process(target=_busy_loop, daemon=True)
                hog.start()
                time.sleep(args.busy_settle_s)
            try:
                a, b = ours(PROMPT, args.n_gen), llama(PROMPT, args.n_gen)
            finally:
                if hog is not None:
                    hog.terminate()
                    hog.join(timeout=5)
            results[("engine", state)].append(a)
            results[("llama", state)].append(b)
            print(
                f"rep {rep} {state}: engine {a['decode_tps']:.1f} tok/s ({a['tokens']} tokens, {a['stop']}, "
                f"threads {a['threads']}, ttft {a['ttft_ms']:.0f} ms), llama.cpp {b['decode_tps']:.1f} tok/s "
                f"({b['tokens']} tokens, ttft {b['ttft_ms']:.0f} ms)",
                flush=True,
            )

    def med(who: str, state: str, key: str) -> float:
        return _median([r[key] for r in results[(who, state)]])

    print(f"\ndecode, {args.n_gen} new tokens at most, {args.threads} threads, {args.reps} reps (medians):")
    for state in ("quiet", "busy"):
        e, l_ = med("engine", state, "decode_tps"), med("llama", state, "decode_tps")
        print(
            f"  {state}: engine {e:.1f} tok/s, llama.cpp {l_:.1f} tok/s: {e / l_:.2f}x;  time to first token "
            f"{med('engine', state, 'ttft_ms'):.0f} vs {med('llama', state, 'ttft_ms'):.0f} ms"
        )
    quiet, busy = med("engine", "quiet", "decode_tps"), med("engine", "busy", "decode_tps")
    print(f"  engine busy / quiet: {busy / quiet:.2f}x")
    cut = [r for s in ("quiet", "busy") for r in results[("engine", s)] if r["stop"] == "wall_time"]
    print(f"  answers cut short by the wall-time cap: {len(cut)} of {2 * args.reps}")

    if args.ttft_reps > 0:
        print(f"\ntime to first token, quiet, median of {args.ttft_reps} (engine vs llama.cpp):")
        for n in TTFT_LENGTHS:
            prompt = _prompt_of(engine.tokenizer, n)
            mine, theirs = [], []
            for _ in range(args.ttft_reps):
                mine.append(ours(prompt, 1))
                theirs.append(llama(prompt, 1))
            e, l_ = _median([r["ttft_ms"] for r in mine]), _median([r["ttft_ms"] for r in theirs])
            print(
                f"  {mine[0]['prompt_tokens']:>3} / {theirs[0]['prompt_tokens']:>3} prompt tokens: "
                f"{e:.0f} vs {l_:.0f} ms ({e / l_:.2f}x the time)"
            )
    parent.send(None)
    worker.join(timeout=10)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cold = _start_in_child(Path(tmp))
    warm = _start_in_child(None)
    for name, run in (("cold", cold), ("warm", warm)):
        split = run["split"]
        load_s = sum(split[k] for k in ("read_s", "build_s", "warmup_s"))
        print(
            f"{name} start (a new process): engine load {load_s:.2f} s"
            f" (read {split['read_s']:.2f}, build {split['build_s']:.2f} of which C++ compile {run['compile_s']:.2f},"
            f" warm-up {split['warmup_s']:.2f}); without the compile {load_s - run['compile_s']:.2f} s; "
            f"process start to ready {run['total_s']:.2f} s; torch imported: {run['torch']}"
        )
    peak = engine.last_metrics.peak_rss_bytes if engine.last_metrics else 0
    print(
        f"\nresident {psutil.Process().memory_info().rss / 1e6:.0f} MB; the last generation's peak {peak / 1e6:.0f} MB"
    )


if __name__ == "__main__":
    main()
