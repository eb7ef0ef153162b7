"""A llama-bench-compatible benchmark of the in-process engine.

Same tests and the same record shape as llama.cpp's `llama-bench -o json` (tools/llama-bench/llama-bench.cpp):
`ppN` times one forward pass over N prompt tokens, `tgN` times N single-token decode steps after one start token
(llama-bench feeds random tokens; so do we), each test warmed up once and repeated; `samples_ns` holds every
repetition's wall time, `samples_ts` the matching tokens/sec, `avg_ts`/`stddev_ts` their mean and sample stddev.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

RUNTIME = "rigfit"
TEST_PATTERN = re.compile(r"^(pp|tg)(\d+)$")


def parse_test(name: str) -> tuple[int, int]:
    """'pp512' -> (512, 0); 'tg128' -> (0, 128)."""
    match = TEST_PATTERN.match(name)
    if not match or int(match.group(2)) < 1:
        raise ValueError(f"unknown test {name!r}: use ppN or tgN, e.g. pp512, tg128")
    n = int(match.group(2))
    return (n, 0) if match.group(1) == "pp" else (0, n)


def _cpu_info() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _engine_for(engine_or_path: Any) -> Any:
    from inference.engine import Engine

    if isinstance(engine_or_path, Engine):
        return engine_or_path.load() if engine_or_path.state != "ready" else engine_or_path
    from dataclasses import replace

    from inference.conf import load_settings

    settings = replace(load_settings(), model_path=Path(engine_or_path))
    return Engine(settings).load()


def _random_tokens(vocab_size: int, n: int, seed: int) -> list[int]:
    import numpy as np

    return np.random.default_rng(seed).integers(10, max(11, vocab_size), size=n).tolist()


def _time_prompt(engine: Any, n_prompt: int, seed: int) -> int:
    ids = _random_tokens(engine.model.vocab, n_prompt, seed)
    started = time.perf_counter_ns()
    engine.model.forward(ids, 0)
    return time.perf_counter_ns() - started


def _time_gen(engine: Any, n_gen: int, seed: int) -> int:
    ids = _random_tokens(engine.model.vocab, n_gen + 1, seed)
    governor = engine.governor  # the thread count the demo's generations would use now, re-checked as they do
    governor.start()
    engine.model.forward(ids[:1], 0)
    started = time.perf_counter_ns()
    for position, token in enumerate(ids[1 : n_gen + 1], start=1):
        governor.tick()
        engine.model.forward([token], position)
    return time.perf_counter_ns() - started


def run_bench(
    engine_or_path: Any,
    tests: Iterable[str] = ("pp512", "tg128"),
    repetitions: int = 5,
    warmup: bool = True,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Run each test `repetitions` times (after one warm-up run) and return llama-bench JSON records."""
    if repetitions < 1:
        raise ValueError("repetitions must be at least 1")
    parsed = [(name, *parse_test(name)) for name in tests]
    engine = _engine_for(engine_or_path)
    source = engine.source
    records: list[dict[str, Any]] = []
    # llama-bench names the architecture (config.json's model_type), not a Python class
    architecture = engine.model.architecture or type(engine.model).__name__
    model_type = (
        f"{architecture} {source.quant}" if source and source.quant else f"{architecture} {engine.status()['weights']}"
    )
    model_size = engine.model.size_bytes
    isa = getattr(engine.model, "isa", "")
    runtime_version = f"native step ({isa})" if isa else type(engine.model).__name__
    with engine._gen_lock:
        for name, n_prompt, n_gen in parsed:

            def run_once(seed: int, n_prompt: int = n_prompt, n_gen: int = n_gen) -> int:
                return _time_prompt(engine, n_prompt, seed) if n_prompt else _time_gen(engine, n_gen, seed)

            if warmup:
                if progress:
                    progress(f"{name}: warm-up")
                run_once(0)
            samples_ns: list[int] = []
            for rep in range(repetitions):
                samples_ns.append(run_once(rep + 1))
                if progress:
                    progress(f"{name}: repetition {rep + 1}/{repetitions}")
            n_tokens = n_prompt or n_gen
            samples_ts = [n_tokens * 1e9 / ns for ns in samples_ns]
            records.append(
                {
                    "build_commit": RUNTIME,
                    "build_number": 0,
                    "runtime": RUNTIME,
                    "runtime_version": runtime_version,
                    "cpu_info": _cpu_info(),
                    "gpu_info": "",
                    "backends": "CPU",
                    "model_filename": str(source.path) if source else type(engine.model).__name__,
                    "model_type": model_type,
                    "model_size": model_size,
                    "model_n_params": engine.n_params,
                    "n_batch": max(n_prompt, 1),
                    "n_ubatch": max(n_prompt, 1),
                    "n_threads": engine.governor.threads or engine.settings.n_threads,
                    "cpu_mask": "0x0",
                    "n_gpu_layers": 0,
                    "type_k": "f32",
                    "type_v": "f32",
                    "flash_attn": False,
                    "use_mmap": False,
                    "embeddings": False,
                    "n_prompt": n_prompt,
                    "n_gen": n_gen,
                    "n_depth": 0,
                    "test_time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "avg_ns": int(statistics.fmean(samples_ns)),
                    "stddev_ns": int(statistics.stdev(samples_ns)) if len(samples_ns) > 1 else 0,
                    "avg_ts": statistics.fmean(samples_ts),
                    "stddev_ts": statistics.stdev(samples_ts) if len(samples_ts) > 1 else 0.0,
                    "samples_ns": samples_ns,
                    "samples_ts": samples_ts,
                    "pid": os.getpid(),
                }
            )
    return records
