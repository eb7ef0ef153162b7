from __future__ import annotations

import json

import pytest

from inference.bench import parse_test, run_bench

LLAMA_BENCH_FIELDS = {
    "build_commit", "cpu_info", "gpu_info", "backends", "model_filename", "model_type", "model_size",
    "model_n_params", "n_threads", "n_prompt", "n_gen", "n_depth", "test_time", "avg_ns", "stddev_ns",
    "avg_ts", "stddev_ts", "samples_ns", "samples_ts",
}  # fmt: skip


def test_it_parses_llama_bench_test_names():
    assert parse_test("pp512") == (512, 0)
    assert parse_test("tg128") == (0, 128)
    for bad in ("pp", "tg0", "xx12", "pp-1"):
        with pytest.raises(ValueError):
            parse_test(bad)


def test_it_emits_llama_bench_shaped_records(tiny_engine):
    seen: list[str] = []
    records = run_bench(tiny_engine, tests=("pp16", "tg8"), repetitions=3, progress=seen.append)
    assert [(r["n_prompt"], r["n_gen"]) for r in records] == [(16, 0), (0, 8)]
    for record in records:
        assert record.keys() >= LLAMA_BENCH_FIELDS
        assert len(record["samples_ns"]) == len(record["samples_ts"]) == 3
        assert all(isinstance(ns, int) and ns > 0 for ns in record["samples_ns"])
        n = record["n_prompt"] or record["n_gen"]
        assert record["samples_ts"] == pytest.approx([n * 1e9 / ns for ns in record["samples_ns"]])
        assert record["avg_ts"] == pytest.approx(sum(record["samples_ts"]) / 3)
        assert record["stddev_ts"] >= 0
        assert record["test_time"].endswith("Z")
        assert record["backends"] == "CPU"
        assert record["model_type"].startswith(f"{tiny_engine.model.architecture} ")  # the architecture
        assert 1 <= record["n_threads"] <= tiny_engine.settings.n_threads
        json.dumps(record)  # serialisable as llama-bench's -o json
    assert seen[0] == "pp16: warm-up" and seen[-1] == "tg8: repetition 3/3"


def test_it_refuses_zero_repetitions(tiny_engine):
    with pytest.raises(ValueError):
        run_bench(tiny_engine, tests=("tg4",), repetitions=0)


def test_it_names_the_native_step_and_its_instruction_set_as_the_runtime(gguf_engine):
    (record,) = run_bench(gguf_engine, tests=("tg2",), repetitions=1, warmup=False)
    assert gguf_engine.model.isa in {"avx2", "avx512-vnni"}
    assert record["runtime_version"] == f"native step ({gguf_engine.model.isa})"
