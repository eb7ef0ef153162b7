"""rigfit-probe: the report, `fit` via a live site and via the local database, `bench`, submission and retry.

Only boundaries are faked: the machine (probe.detect.Sources). `bench` runs the project's own harness
(inference.bench) on the tiny random model of the inference tests; the site is a real live server; submissions go
through the real benchmarks API with a real token.
"""

from __future__ import annotations

import io
import json
import sys

import pytest
from django.contrib.auth import get_user_model

from benchmarks.models import BenchmarkRun
from benchmarks.services import token_create
from probe import cli
from tests.factories import GEMMA3_270M_SHAPE, make_hardware, make_model, make_quantization
from tests.probe.fakes import GIB, MIB, FakeNVML, FakePsutil, FakeSources

RTX_4090 = {
    "name": "NVIDIA GeForce RTX 4090",
    "total": 24564 * MIB,
    "free": 6 * 1024 * MIB,
    # What NVML reports on an RTX 4090: 10,501 MHz x 384 bits x 2 = 1,008 GB/s; a 2,520 MHz boost clock.
    "mem_clock": 10501,
    "bus_bits": 384,
    "sm_clock": 2520,
}
UNREACHABLE = "http://127.0.0.1:9"  # discard port: nothing listens


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def gpu_machine(monkeypatch):
    monkeypatch.setattr("probe.detect.Sources", lambda: FakeSources(nvml=FakeNVML([RTX_4090]), psutil=FakePsutil()))


@pytest.fixture
def cpu_machine(monkeypatch):
    monkeypatch.setattr("probe.detect.Sources", lambda: FakeSources(nvml=None, psutil=FakePsutil()))


def make_small_catalog():
    rtx = make_hardware(
        name="GeForce RTX 4090", slug="geforce-rtx-4090", memory_bytes=24 * GIB, bandwidth_gbps=1008, clock_mhz=2520
    )
    small = make_model(name="Gemma 3 270M", slug="gemma-3-270m", family="gemma3", **GEMMA3_270M_SHAPE)
    make_quantization(small, name="Q4_K_M", bits_per_weight=4.89, file_bytes=253_115_520)
    big = make_model(name="Llama 8B", slug="llama-8b")  # the factory's default shape: 8.03B parameters
    make_quantization(big, name="Q4_K_M", bits_per_weight=4.89)
    make_quantization(big, name="F16", bits_per_weight=16.0)
    return rtx, small, big


# --- report ------------------------------------------------------------------------------------------------------


def test_it_prints_a_readable_report(gpu_machine):
    code, out, _ = run([])
    assert code == 0
    assert "CPU       AMD Ryzen 9 7950X 16-Core Processor · 8 cores / 16 threads" in out
    assert "RAM       64.0 GiB total, 48.0 GiB available" in out
    assert "NVIDIA GeForce RTX 4090 · 24.0 GiB total, 6.0 GiB free · driver 550.54.15 · CUDA 12.4" in out


def test_it_says_what_it_could_not_read(cpu_machine):
    code, out, _ = run(["report"])
    assert code == 0
    assert "GPU       none found: CPU-only" in out
    assert "Could not read:" in out and "pynvml" in out


@pytest.mark.parametrize("argv", [["--json"], ["report", "--json"]])
def test_it_prints_the_report_as_json(gpu_machine, argv):
    code, out, _ = run(argv)
    data = json.loads(out)
    assert code == 0
    assert data["gpus"][0]["memory_free_bytes"] == 6 * GIB
    assert data["cpu"]["features"][:2] == ["AVX", "AVX2"]


def test_it_runs_as_a_module():
    import subprocess

    done = subprocess.run([sys.executable, "-m", "probe", "--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "memory" in json.loads(done.stdout)


# --- fit ---------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_lists_what_fits_from_the_local_database(gpu_machine):
    make_small_catalog()
    code, out, _ = run(["fit", "--json", "--ctx", "4096"])
    data = json.loads(out)
    assert code == 0 and data["source"] == "local database"
    assert data["hardware"]["slug"] == "geforce-rtx-4090"
    by_model = {row["model"]: row for row in data["fits"]}
    assert by_model["gemma-3-270m"]["quant"] == "Q4_K_M"
    assert by_model["llama-8b"]["quant"] == "F16"  # 16 GB of weights fit in 24 GiB
    # 6 GiB are free right now: the small model fits in it, the 16 GB one does not.
    assert by_model["gemma-3-270m"]["fits_free_memory"] is True
    assert by_model["llama-8b"]["fits_free_memory"] is False


@pytest.mark.django_db
def test_it_prints_a_fit_table_and_filters_by_model(gpu_machine):
    make_small_catalog()
    code, out, _ = run(["fit", "--model", "gemma-3-270m"])
    assert code == 0
    assert "catalog device GeForce RTX 4090 (geforce-rtx-4090)" in out
    assert "| Gemma 3 270M | Q4_K_M" in out and "Llama 8B" not in out


@pytest.mark.django_db
def test_it_says_when_no_catalog_device_matches(cpu_machine):
    make_small_catalog()
    code, out, err = run(["fit"])
    assert code == 1 and out == ""
    assert "No device in the local catalog matches 'AMD Ryzen 9 7950X 16-Core Processor'" in err
    code, out, _ = run(["fit", "--hardware", "geforce-rtx-4090", "--json"])
    assert code == 0 and json.loads(out)["hardware"]["slug"] == "geforce-rtx-4090"


@pytest.mark.django_db(transaction=True)
def test_it_lists_what_fits_from_a_live_site(gpu_machine, live_server):
    make_small_catalog()
    code, out, err = run(["fit", "--site", live_server.url, "--ctx", "8192", "--json"])
    assert code == 0, err
    data = json.loads(out)
    assert data["source"] == live_server.url and data["ctx"] == 8192
    assert data["hardware"] == {"slug": "geforce-rtx-4090", "name": "GeForce RTX 4090", "bandwidth_gbps": 1008.0}
    assert {row["model"] for row in data["fits"]} == {"gemma-3-270m", "llama-8b"}
    # NVML's clocks say 1,008.1 GB/s, the catalog's 1,008 too: the same estimate both ways, through the site's API.
    assert data["measured"]["used"] == {"bandwidth_gbps": 1008.1, "clock_mhz": 2520, "system_bandwidth_gbps": 61.4}
    for row in data["fits"]:
        assert row["est_decode_tps"] == pytest.approx(row["est_decode_tps_catalog"], rel=0.02)
    code, out, err = run(["fit", "--site", live_server.url, "--hardware", "nope"])
    assert code == 1 and "has no hardware 'nope'" in err


@pytest.mark.django_db
def test_it_estimates_with_what_it_measured_on_this_machine(monkeypatch):
    # A 4090 whose memory runs at half its clock (2 x 5,250 MHz x 384 bits = 504 GB/s): decode is bandwidth-bound,
    # so the estimate with this machine's figure is slower than the one with the catalog's 1,008 GB/s.
    slow = {**RTX_4090, "mem_clock": 5250}
    monkeypatch.setattr("probe.detect.Sources", lambda: FakeSources(nvml=FakeNVML([slow]), psutil=FakePsutil()))
    make_small_catalog()
    code, out, err = run(["fit", "--json", "--model", "llama-8b"])
    assert code == 0, err
    data = json.loads(out)
    assert data["measured"]["bandwidth_gbps"] == pytest.approx(504.0)  # 2 x 5250e6 x 384 / 8 / 1e9
    assert "5250 MHz memory clock x 384-bit bus" in data["measured"]["how"]
    (row,) = data["fits"]
    assert row["est_decode_tps"] < 0.75 * row["est_decode_tps_catalog"]
    code, out, _ = run(["fit", "--model", "llama-8b"])
    assert "Memory bandwidth: catalog 1008.0 GB/s (maker's peak); this machine 504 GB/s" in out
    assert "Host RAM read: 61 GB/s. Estimates use this machine's figures." in out
    # --no-measure: the catalog's figures only, and no measurement reported.
    code, out, _ = run(["fit", "--json", "--model", "llama-8b", "--no-measure"])
    data = json.loads(out)
    assert data["measured"] is None
    assert data["fits"][0]["est_decode_tps"] == data["fits"][0]["est_decode_tps_catalog"]


@pytest.mark.django_db
def test_it_measures_the_ram_of_a_cpu_only_machine(cpu_machine):
    make_hardware(name="Ryzen 9 7950X", slug="ryzen-9-7950x", kind="cpu", memory_bytes=64 * GIB, bandwidth_gbps=83.2)
    code, out, err = run(["fit", "--json", "--hardware", "ryzen-9-7950x"])
    assert code == 0, err
    data = json.loads(out)
    assert data["measured"]["used"] == {"bandwidth_gbps": 61.4}
    assert data["measured"]["how"].startswith("measured: read 0.50 GiB with 16 thread(s)")


def test_it_reports_an_unreachable_site(gpu_machine):
    code, out, err = run(["fit", "--site", UNREACHABLE, "--json"])
    assert code == 1
    assert "Could not reach http://127.0.0.1:9" in err
    assert "Could not reach" in json.loads(out)["error"]


def test_it_rejects_a_bad_context(gpu_machine):
    with pytest.raises(SystemExit) as exit_info:
        run(["fit", "--ctx", "0"])
    assert exit_info.value.code == 2


# --- bench and submit --------------------------------------------------------------------------------------------


def bench_record(n_prompt: int, n_gen: int, samples_ts: list[float]) -> dict:
    """A llama-bench record whose mean, sample stddev and nanosecond samples agree, as the site checks."""
    import statistics

    tokens = n_prompt or n_gen
    return {
        "model_filename": "gemma-3-270m-Q4_K_M.gguf", "model_type": "gemma3 270M Q4_K_M",
        "model_size": 253_115_520, "model_n_params": 268_098_176, "backends": "CPU", "n_threads": 2,
        "n_prompt": n_prompt, "n_gen": n_gen, "samples_ts": samples_ts,
        "samples_ns": [round(tokens / ts * 1e9) for ts in samples_ts],
        "avg_ts": round(statistics.fmean(samples_ts), 6), "stddev_ts": round(statistics.stdev(samples_ts), 6),
        "test_time": "2026-11-24T14:00:00Z",
    }  # fmt: skip


RECORDS = [bench_record(512, 0, [406.3, 410.5, 414.7]), bench_record(0, 128, [20.9, 21.3, 21.7])]


@pytest.fixture
def tiny_harness(monkeypatch):
    """The project's own harness (inference.bench.run_bench) on the tiny random Gemma 3 model of the inference tests
    (tests/inference/conftest.py): the probe's default engine loads as that model instead of the 270M one."""
    import dataclasses

    from inference.conf import load_settings
    from inference.engine import Engine
    from inference.tiny import make_byte_tokenizer, make_tiny_causal_lm

    tokenizer = make_byte_tokenizer()
    settings = dataclasses.replace(load_settings(), max_new_tokens=64, max_prompt_tokens=64)
    tiny = Engine.from_loaded(make_tiny_causal_lm(len(tokenizer)), tokenizer, settings=settings)
    loads = []

    def load(self):
        loads.append(self)
        return tiny

    monkeypatch.setattr(Engine, "load", load)
    tiny.loaded_for = loads  # the engines the probe asked to load (their settings name the model)
    return tiny


@pytest.fixture
def pending(tmp_path):
    return tmp_path / "pending"


def test_it_formats_records_as_llama_benchs_table():
    table = cli.format_bench([dict(r) for r in RECORDS])
    # llama-bench's markdown row: model, size (MiB), params, backend, threads, test, mean ± sd of t/s.
    assert "| gemma3 270M Q4_K_M | 241.39 MiB | 268.10 M | CPU     |       2 | pp512 | 410.50 ± 4.20 |" in table
    assert "tg128" in table and "21.30 ± 0.40" in table


def test_it_prints_the_harness_table_and_a_progress_bar(cpu_machine, tiny_harness):
    import re

    code, out, err = run(["bench", "--tests", "pp16,tg8", "--repetitions", "3"])
    assert code == 0, err
    rows = [re.search(r"\|\s*(pp16|tg8)\s*\|\s*([0-9.]+) ± ([0-9.]+)\s*\|", line) for line in out.splitlines()]
    assert [row[1] for row in rows if row] == ["pp16", "tg8"]
    assert "[##############################] 8/8 tg8: repetition 3/3" in err  # 2 tests x (warm-up + 3)
    assert tiny_harness.loaded_for[-1].settings.model_path is None  # the default model


def test_it_benchmarks_with_the_real_harness_on_a_tiny_model(cpu_machine, tiny_harness):
    """inference.bench itself, not a stand-in: the records the probe prints are the harness's measurements."""
    import re
    import statistics

    code, out, err = run(["bench", "--json", "--tests", "pp16,tg8", "--repetitions", "3"])
    assert code == 0, err
    records = json.loads(out)["records"]
    assert [(r["n_prompt"], r["n_gen"], r["n_depth"]) for r in records] == [(16, 0, 0), (0, 8, 0)]
    for record, tokens in zip(records, (16, 8), strict=True):
        assert len(record["samples_ns"]) == len(record["samples_ts"]) == 3
        # llama-bench's definitions: t/s of a sample = tokens / seconds; avg_ts their mean, stddev_ts their sample sd.
        assert record["samples_ts"] == pytest.approx([tokens * 1e9 / ns for ns in record["samples_ns"]])
        assert record["avg_ts"] == pytest.approx(sum(record["samples_ts"]) / 3)
        assert record["stddev_ts"] == pytest.approx(statistics.stdev(record["samples_ts"]))
        assert record["model_n_params"] == tiny_harness.n_params and record["backends"] == "CPU"
    assert "8/8 tg8: repetition 3/3" in err  # the progress bar: 2 tests x (warm-up + 3 repetitions)

    code, out, err = run(["bench", "--tests", "tg8", "--repetitions", "2"])
    assert code == 0, err
    rows = [re.search(r"\|\s*tg8\s*\|\s*([0-9.]+) ± ([0-9.]+)\s*\|", line) for line in out.splitlines()]
    (speed,) = [row for row in rows if row]
    assert float(speed[1]) > 0


def test_it_prints_bench_records_as_json(cpu_machine, tiny_harness):
    code, out, _ = run(["bench", "--json", "--tests", "tg8", "--repetitions", "2"])
    data = json.loads(out)
    assert code == 0 and [(r["n_gen"], len(r["samples_ts"])) for r in data["records"]] == [(8, 2)]
    assert data["records"][0]["avg_ts"] == pytest.approx(sum(data["records"][0]["samples_ts"]) / 2)
    assert data["report"]["cpu"]["model"] == "AMD Ryzen 9 7950X 16-Core Processor"


def test_it_benchmarks_a_model_file_and_rejects_bad_arguments(cpu_machine, tiny_harness, tmp_path):
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    code, out, _ = run(["bench", "--json", "--model", str(model), "--tests", "tg16", "--repetitions", "1"])
    assert code == 0 and [(r["n_gen"], len(r["samples_ts"])) for r in json.loads(out)["records"]] == [(16, 1)]
    assert tiny_harness.loaded_for[-1].settings.model_path == model  # the harness loaded the file given
    code, _, err = run(["bench", "--model", str(tmp_path / "missing.gguf")])
    assert code == 1 and "No model at" in err
    code, _, err = run(["bench", "--tests", "pp512,xx9"])
    assert code == 1 and "unknown test 'xx9'" in err
    with pytest.raises(SystemExit):
        run(["bench", "--repetitions", "0"])


def test_it_needs_site_and_token_to_submit(cpu_machine, tiny_harness):
    code, _, err = run(["bench", "--submit"])
    assert code == 1 and "--submit needs --site URL and --token T" in err


def test_it_saves_runs_it_could_not_send(cpu_machine, tiny_harness, pending):
    argv = ["bench", "--tests", "pp16,tg8", "--repetitions", "2"]
    code, out, _ = run([*argv, "--submit", "--site", UNREACHABLE, "--token", "t", "--pending", str(pending)])
    assert code == 1
    assert out.count("NOT submitted: could not reach http://127.0.0.1:9") == 2
    saved = sorted(pending.glob("*.json"))
    assert len(saved) == 2
    first = json.loads(saved[0].read_text())
    assert first["site"] == UNREACHABLE and "could not reach" in first["error"]
    payload = first["payload"]
    assert payload["model_slug"] == "gemma-3-270m" and payload["quant"] == "Q4_K_M"
    assert payload["runtime"] == "rigfit" and payload["backend"] == "cpu"
    assert payload["hardware"] == "AMD Ryzen 9 7950X 16-Core Processor"  # no site to match it: the raw name
    from inference.bench import _cpu_info

    # cpu_info is what the harness read from this machine; the hardware name and RAM come from the (fake) host report.
    assert payload["cpu_info"] == _cpu_info() and payload["ram_bytes"] == 64 * GIB
    assert {payload["n_prompt"], payload["n_gen"]} <= {0, 16, 8} and payload["avg_ts"] > 0


@pytest.fixture
def token(db):
    user = get_user_model().objects.create_user("prober", password="x" * 12)
    return token_create(user=user, name="probe")[1]


@pytest.mark.django_db(transaction=True)
def test_it_reports_a_refused_token_and_keeps_the_run(gpu_machine, tiny_harness, pending, live_server):
    make_small_catalog()
    argv = ["bench", "--tests", "pp16,tg8", "--repetitions", "1", "--submit", "--site", live_server.url,
            "--token", "rfb_wrong", "--pending", str(pending)]  # fmt: skip
    code, out, _ = run(argv)
    assert code == 1
    assert "NOT submitted: token refused" in out and "/benchmarks/tokens/" in out
    assert len(list(pending.glob("*.json"))) == 2
    assert BenchmarkRun.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_it_reports_field_errors_from_the_site(gpu_machine, tiny_harness, pending, live_server, token):
    make_small_catalog()
    argv = ["bench", "--json", "--tests", "pp16,tg8", "--repetitions", "1", "--submit", "--site", live_server.url,
            "--token", token, "--pending", str(pending), "--model-slug", "no-such-model"]  # fmt: skip
    code, out, _ = run(argv)
    assert code == 1
    outcomes = json.loads(out)["submissions"]
    assert [o["status"] for o in outcomes] == [422, 422]
    assert "model_slug" in outcomes[0]["message"]
    assert all(o["saved_to"] for o in outcomes)


@pytest.mark.django_db(transaction=True)
def test_it_submits_a_run_that_appears_on_the_model_page(gpu_machine, tiny_harness, pending, live_server, token):
    """bench --submit against a live server stores the harness's runs, as measured (the tiny model stands in for the
    270M one; the slow test below runs the real one)."""
    import httpx

    rtx, _, _ = make_small_catalog()
    # The tiny model reads far fewer bytes a token than the 270M one the runs are filed under, so its speed can pass
    # that model's roofline on a fast machine; a device with room for any speed keeps the check from flagging it.
    rtx.bandwidth_gbps, rtx.fp16_tflops = 1e9, 1e9
    rtx.save(update_fields=["bandwidth_gbps", "fp16_tflops"])
    argv = ["bench", "--tests", "pp16,tg8", "--repetitions", "2", "--submit", "--site", live_server.url, "--token",
            token, "--pending", str(pending)]  # fmt: skip
    code, out, _ = run([*argv[:1], "--json", *argv[1:]])
    assert code == 0, out
    data = json.loads(out)
    assert [s["status"] for s in data["submissions"]] == [201, 201]
    runs = list(BenchmarkRun.objects.order_by("-n_prompt"))
    assert len(runs) == 2 and all(r.status == "accepted" for r in runs), [r.status_reason for r in runs]
    # Stored as the harness measured them: the same tests, samples and mean.
    assert [(r.n_prompt, r.n_gen, r.avg_ts, r.samples_ts) for r in runs] == [
        (rec["n_prompt"], rec["n_gen"], rec["avg_ts"], rec["samples_ts"]) for rec in data["records"]
    ]
    assert runs[0].hardware.slug == "geforce-rtx-4090" and runs[0].model.slug == "gemma-3-270m"
    assert {r.channel for r in runs} == {"cli"}
    assert list(pending.glob("*.json")) == []
    page = httpx.get(f"{live_server.url}/models/gemma-3-270m/?hardware=geforce-rtx-4090", timeout=30).text
    assert "No one has shared a benchmark" not in page
    assert "GeForce RTX 4090" in page


@pytest.mark.django_db(transaction=True)
def test_it_retries_saved_runs(cpu_machine, tiny_harness, pending, live_server, token):
    make_small_catalog()
    run(["bench", "--tests", "pp16,tg8", "--repetitions", "1", "--submit", "--site", UNREACHABLE, "--token", token,
         "--pending", str(pending)])  # fmt: skip
    assert len(list(pending.glob("*.json"))) == 2

    code, out, _ = run(["retry", "--token", token, "--pending", str(pending)])  # the saved site is still down
    assert code == 1 and out.count("still pending") == 2

    saved = {path: path.read_text() for path in pending.glob("*.json")}
    code, out, _ = run(["retry", "--site", live_server.url, "--token", token, "--pending", str(pending), "--json"])
    assert code == 0
    assert [r["status"] for r in json.loads(out)["results"]] == [201, 201]
    assert list(pending.glob("*.json")) == []
    assert BenchmarkRun.objects.count() == 2

    # The same runs sent again: the site says it has them (409), which counts as sent.
    for path, text in saved.items():
        path.write_text(text)
    code, out, _ = run(["retry", "--site", live_server.url, "--token", token, "--pending", str(pending)])
    assert code == 0 and out.count("already stored") == 2 and list(pending.glob("*.json")) == []
    assert BenchmarkRun.objects.count() == 2

    code, out, _ = run(["retry", "--token", token, "--pending", str(pending)])
    assert code == 0 and "Nothing to retry" in out


@pytest.mark.slow
@pytest.mark.xdist_group("inference-real-model")  # one worker builds the converted-model cache; the rest reuse it
@pytest.mark.django_db(transaction=True)
def test_it_benchmarks_for_real_and_the_run_appears_on_the_model_page(live_server, token, pending):
    """End to end: the real harness on the real default model (Gemma 3 270M Q4_K_M), submitted to a live server."""
    import httpx

    make_hardware(name="Test CPU host", slug="test-cpu-host", vendor="AMD", kind="cpu", memory_bytes=24 * GIB,
                  bandwidth_gbps=100.0, fp16_tflops=None, matrix_tflops=1.0)  # fmt: skip
    # Test figures, not a claim about any machine; the compute figure lets the site check the prompt speed (the
    # 270M model's ~0.54 GFLOP per token caps pp at ~1,850 t/s at 1 TFLOPS; this machine's 2 cores do ~570).
    model = make_model(name="Gemma 3 270M", slug="gemma-3-270m", family="gemma3", **GEMMA3_270M_SHAPE)
    make_quantization(model, name="Q4_K_M", bits_per_weight=4.89, file_bytes=253_115_520)
    argv = ["bench", "--json", "--tests", "pp64,tg16", "--repetitions", "2", "--submit", "--site", live_server.url,
            "--token", token, "--hardware", "test-cpu-host", "--pending", str(pending)]  # fmt: skip
    code, out, err = run(argv)
    assert code == 0, out + err
    data = json.loads(out)
    assert [(r["n_prompt"], r["n_gen"]) for r in data["records"]] == [(64, 0), (0, 16)]
    assert all(r["avg_ts"] > 0 and len(r["samples_ts"]) == 2 for r in data["records"])
    assert [s["status"] for s in data["submissions"]] == [201, 201]
    runs = BenchmarkRun.objects.filter(model__slug="gemma-3-270m", hardware__slug="test-cpu-host")
    assert runs.count() == 2 and {r.status for r in runs} == {"accepted"}, [r.status_reason for r in runs]
    assert {r.runtime for r in runs} == {"rigfit"} and {r.quant_name for r in runs} == {"Q4_K_M"}
    page = httpx.get(f"{live_server.url}/models/gemma-3-270m/", timeout=30).text
    assert "No one has shared a benchmark" not in page and "Test CPU host" in page
