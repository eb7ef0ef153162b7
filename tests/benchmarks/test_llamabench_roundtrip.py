"""llama-bench output in, stored runs out: every field the fit and the physics checks read survives the trip.

Expected values are read from the fixture files with json.loads (llama-bench's own lines), never from the parser;
the depth check's expected KV bytes are worked by hand from Llama 3.1 8B's published config."""

from __future__ import annotations

import json

import pytest

from benchmarks import services
from benchmarks.models import BenchmarkRun, Channel, Status
from tests.benchmarks.conftest import read_fixture
from tests.factories import make_hardware, make_model, make_quantization

D4096 = "h200-llama-3.1-8b-q4_k_m-tg128-d4096.jsonl"


def raw_records(name: str) -> list[dict]:
    text = read_fixture(name).strip()
    if text.startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def llama_on_h200(db):
    model = make_model(name="Llama 3.1 8B", slug="llama-3-1-8b")  # factories' LLAMA_8B_SHAPE
    make_quantization(model, name="Q4_K_M", bits_per_weight=None, file_bytes=4_915_756_000)
    # NVIDIA's H200 datasheet: 4.8 TB/s of HBM3e bandwidth.
    hardware = make_hardware(name="NVIDIA H200", slug="nvidia-h200", bandwidth_gbps=4800.0)
    return model, hardware


def stored(name: str, hardware: str, **kwargs) -> list[BenchmarkRun]:
    result = services.submit_llama_bench(
        text=read_fixture(name), hardware=hardware, channel=Channel.API, submitter=None, **kwargs
    )
    assert not result.errors and not result.duplicates
    return [run for run, _verdict in result.stored]


def assert_round_trip(run: BenchmarkRun, record: dict) -> None:
    run.refresh_from_db()
    assert run.avg_ts == record["avg_ts"]
    assert run.stddev_ts == record["stddev_ts"]
    assert run.samples_ts == record["samples_ts"]
    assert (run.n_prompt, run.n_gen, run.n_depth) == (record["n_prompt"], record["n_gen"], record["n_depth"])
    assert run.n_threads == record.get("n_threads")
    assert (run.n_batch, run.n_ubatch) == (record["n_batch"], record["n_ubatch"])
    assert run.model_size == record["model_size"]
    assert run.model_n_params == record["model_n_params"]
    assert run.cpu_info == record["cpu_info"]
    assert run.gpu_info == record["gpu_info"]
    assert run.model_type == record["model_type"]
    assert (run.type_k, run.type_v) == (record["type_k"], record["type_v"])
    # llama-bench's -1 means "its default" for both: no layer count and no flash-attention choice to store.
    assert run.n_gpu_layers == (None if record["n_gpu_layers"] < 0 else record["n_gpu_layers"])
    assert run.flash_attn == {-1: None, 0: False, 1: True}[record["flash_attn"]]


@pytest.mark.parametrize("name", ["gemma3-270m-q4_k_m-cpu.json", "gemma3-270m-q4_k_m-cpu.jsonl"])
def test_it_stores_every_llama_bench_field_of_the_cpu_runs(gemma, epyc, name):
    records = raw_records(name)
    runs = stored(name, "test-epyc")
    assert len(runs) == len(records) == 2
    for run, record in zip(runs, records, strict=True):
        assert_round_trip(run, record)
    # The fixture's own figures, as printed (README.md): 2 threads on "AMD EPYC", pp512 then tg128.
    expected = [(2, "AMD EPYC", 512, 0), (2, "AMD EPYC", 0, 128)]
    assert [(r.n_threads, r.cpu_info, r.n_prompt, r.n_gen) for r in runs] == expected


def test_it_stores_the_depth_4096_record_with_its_gpu_layers_and_flash_attention(llama_on_h200):
    (record,) = raw_records(D4096)
    (run,) = stored(D4096, "NVIDIA H200", model_slug="llama-3-1-8b")
    assert_round_trip(run, record)
    assert (run.n_depth, run.n_gpu_layers, run.flash_attn, run.avg_ts) == (4096, 99, True, 249.836)


def test_its_roofline_check_reads_the_kv_cache_of_the_runs_depth(llama_on_h200):
    (record,) = raw_records(D4096)
    (deep,) = stored(D4096, "NVIDIA H200", model_slug="llama-3-1-8b")
    shallow_line = json.dumps({**record, "n_depth": 0, "avg_ns": record["avg_ns"] + 1})
    (shallow,) = services.submit_llama_bench(
        text=shallow_line, hardware="NVIDIA H200", channel=Channel.API, submitter=None, model_slug="llama-3-1-8b"
    ).stored
    shallow = shallow[0]
    # Llama 3.1 8B (config.json): 32 layers x 8 KV heads x head_dim 128, K and V in f16 (2 bytes):
    # 2 x 32 x 8 x 128 x 2 = 131,072 bytes of KV per token. A tg test at depth 4096 reads 4096 tokens of it, one at
    # depth 0 reads 1 token (the context floor), so the bytes per token differ by 131,072 x 4095 = 536,739,840.
    bandwidth = 4800e9
    extra_bytes = bandwidth / services.roofline_for(deep) - bandwidth / services.roofline_for(shallow)
    assert extra_bytes == pytest.approx(131_072 * 4095, rel=1e-9)
    # The measured 249.8 t/s stands under both limits (the roofline is ~900 t/s at this depth).
    assert deep.status != Status.FLAGGED and 249.836 < services.roofline_for(deep) < services.roofline_for(shallow)
