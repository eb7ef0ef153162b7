from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from benchmarks.management.commands.load_public_runs import PUBLIC_RUNS, load, read_rows
from benchmarks.models import BenchmarkRun, Channel, ModerationDecision, Status
from catalog.models import Hardware, HardwareKind, Model
from tests.factories import make_hardware, make_model, make_quantization

SOURCES = {
    "xiongjiedai": "https://github.com/XiongjieDai/GPU-Benchmarks-on-LLM-Inference/blob/",
    "llamacpp-4167": "https://github.com/ggml-org/llama.cpp/discussions/4167",
    "llamacpp-15013": "https://github.com/ggml-org/llama.cpp/discussions/15013",
    "llamacpp-15021": "https://github.com/ggml-org/llama.cpp/discussions/15021",
    "llamacpp-10879": "https://github.com/ggml-org/llama.cpp/discussions/10879",
    "llamacpp-benches": "https://github.com/ggml-org/llama.cpp/blob/",
    "geerlingguy-ai-benchmarks": "https://github.com/geerlingguy/ai-benchmarks/issues/",
    "geerlingguy-sbc-reviews": "https://github.com/geerlingguy/sbc-reviews/issues/",
    "llamacpp-5835": "https://github.com/ggml-org/llama.cpp/pull/5835",
    "llamacpp-13324": "https://github.com/ggml-org/llama.cpp/pull/13324",
    "llamacpp-26284": "https://github.com/ggml-org/llama.cpp/pull/26284",
    "llamacpp-18537": "https://github.com/ggml-org/llama.cpp/pull/18537",
    "llamacpp-21024": "https://github.com/ggml-org/llama.cpp/pull/21024",
    "llamacpp-22933": "https://github.com/ggml-org/llama.cpp/pull/22933",
    "llamacpp-14903": "https://github.com/ggml-org/llama.cpp/pull/14903",
}
HEADER = (
    "source,source_url,date,hardware,gpu_count,device,model_slug,quant,backend,n_prompt,n_gen,n_depth,avg_ts,"
    "stddev_ts,n_gpu_layers,flash_attn,n_batch,n_ubatch,build_commit,build_number,note\n"
)


def test_it_cites_a_known_source_on_every_row():
    rows = read_rows(PUBLIC_RUNS)
    assert len(rows) >= 500
    for row in rows:
        assert row["source_url"].startswith(SOURCES[row["source"]]), row
        assert float(row["avg_ts"]) > 0
        assert int(row["gpu_count"]) >= 1
        assert int(row["n_prompt"] or 0) + int(row["n_gen"] or 0) > 0


def test_it_explains_its_columns_and_sources_in_the_header():
    header = [line for line in PUBLIC_RUNS.read_text().splitlines() if line.startswith("#")]
    text = "\n".join(header)
    for column in HEADER.strip().split(","):
        assert re.search(rf"^#   .*\b{column}\b", text, re.MULTILINE), column
    for source in SOURCES:
        assert f"#   {source}" in text, source


def test_it_keeps_device_kinds_models_and_tests_broad():
    rows = read_rows(PUBLIC_RUNS)
    assert {row["backend"] for row in rows} == {"cuda", "metal", "rocm", "vulkan", "cpu"}
    assert len({row["model_slug"] for row in rows}) >= 4
    assert len({row["hardware"] for row in rows}) >= 60
    assert any(int(row["gpu_count"]) > 1 for row in rows)
    assert any(int(row["n_depth"] or 0) > 0 for row in rows)


def test_it_holds_cpu_runs_and_rocm_and_vulkan_runs_from_more_than_one_source():
    """Leave-one-source-out needs a second source for a backend before its error can be judged."""
    rows = read_rows(PUBLIC_RUNS)
    sources: dict[str, set[str]] = {}
    for row in rows:
        sources.setdefault(row["backend"], set()).add(row["source"])
    assert sources["cpu"] == {"geerlingguy-ai-benchmarks", "geerlingguy-sbc-reviews"}
    assert len(sources["rocm"]) >= 3 and len(sources["vulkan"]) >= 3
    cpu: dict[str, dict[tuple[str, str], tuple[str, str]]] = {}
    for r in rows:
        if r["backend"] == "cpu":
            cpu.setdefault(r["hardware"], {})[(r["n_prompt"], r["n_gen"])] = (r["avg_ts"], r["stddev_ts"])
    assert cpu == {
        # The i5-4278U's llama-bench table of geerlingguy/ai-benchmarks issue 53, cell for cell (build 936918514).
        "intel-core-i5-4278u-8gb-ddr3l-1600": {
            ("512", "0"): ("17.70", "0.08"),
            ("4096", "0"): ("14.06", "0.04"),
            ("0", "128"): ("7.68", "0.03"),
        },
        # The Framework Laptop 12 i3-1315U's table of geerlingguy/sbc-reviews issue 107, cell for cell (threads 2).
        "intel-core-i3-1315u-8gb-ddr5-5200": {
            ("512", "0"): ("28.67", "0.18"),
            ("4096", "0"): ("23.91", "0.04"),
            ("0", "128"): ("11.05", "0.08"),
        },
    }


def test_it_holds_vulkan_runs_after_the_decode_rewrite_from_several_sources():
    """Vulkan decode is fitted only on runs published after the November 2024 shader rewrite (catalog.speed_fit), so
    a held-out Vulkan source needs others from that era: the scoreboard, #13324 and three of 0cc4m's PR tables."""
    rows = read_rows(PUBLIC_RUNS)
    # ISO dates compare as strings; the scoreboard's rows have none and count as current, as in the fit.
    decode = [r for r in rows if r["backend"] == "vulkan" and r["n_gen"] != "0" and r["n_prompt"] == "0"]
    recent = {r["source"] for r in decode if not r["date"] or r["date"] >= "2024-11-14"}
    assert recent == {"llamacpp-10879", "llamacpp-13324", "llamacpp-21024", "llamacpp-22933", "llamacpp-14903"}
    added = {
        (
            r["source"],
            r["hardware"],
            r["model_slug"],
            r["quant"],
            r["n_prompt"],
            r["n_gen"],
            r["n_depth"],
            r["flash_attn"],
        ): (
            r["avg_ts"],
            r["stddev_ts"],
        )
        for r in rows
        if r["source"] in {"llamacpp-21024", "llamacpp-22933", "llamacpp-14903"}
    }
    gpu, pro7 = "nvidia-geforce-rtx-3090", "amd-radeon-pro-vii"
    assert added == {
        # llama.cpp PR 21024, 0cc4m 2026-05-15, "## RTX 3090", the "t/s (before)" column, -fa 1.
        ("llamacpp-21024", gpu, "llama-3-8b", "Q4_0", "512", "0", "0", "1"): ("4753.45", "23.50"),
        ("llamacpp-21024", gpu, "llama-3-8b", "Q4_0", "0", "128", "0", "1"): ("146.73", "0.54"),
        ("llamacpp-21024", gpu, "llama-3-8b", "Q8_0", "512", "0", "0", "1"): ("4830.91", "17.72"),
        ("llamacpp-21024", gpu, "llama-3-8b", "Q8_0", "0", "128", "0", "1"): ("95.05", "0.04"),
        ("llamacpp-21024", gpu, "gpt-oss-20b", "MXFP4_MOE", "512", "0", "0", "1"): ("4616.91", "47.95"),
        ("llamacpp-21024", gpu, "gpt-oss-20b", "MXFP4_MOE", "0", "128", "0", "1"): ("181.32", "0.65"),
        # llama.cpp PR 22933, 0cc4m 2026-06-19, "## AMD Radeon Pro VII (Vega20)", "t/s (before)", -fa 1.
        ("llamacpp-22933", pro7, "llama-3-8b", "Q4_0", "512", "0", "0", "1"): ("844.36", "3.60"),
        ("llamacpp-22933", pro7, "llama-3-8b", "Q4_0", "0", "128", "0", "1"): ("102.76", "0.41"),
        ("llamacpp-22933", pro7, "llama-3-8b", "Q4_0", "512", "0", "8192", "1"): ("279.20", "3.40"),
        ("llamacpp-22933", pro7, "llama-3-8b", "Q4_0", "0", "128", "8192", "1"): ("80.19", "0.02"),
        # llama.cpp PR 14903, 0cc4m 2025-08-17, "Nvidia RTX 3090 (without coopmat)", "t/s (after)", tg128 only.
        ("llamacpp-14903", gpu, "llama-2-7b", "Q4_0", "0", "128", "0", "0"): ("146.23", "0.31"),
        ("llamacpp-14903", gpu, "llama-2-7b", "Q4_0", "0", "128", "0", "1"): ("145.54", "0.31"),
    }


@pytest.mark.slow  # the full seed catalog and 1,178 runs through the checks: about 40 s on the 2-core machine
@pytest.mark.django_db
def test_it_loads_every_row_into_the_real_catalog_once():
    call_command("load_seed")
    rows = read_rows(PUBLIC_RUNS)
    models = set(Model.objects.values_list("slug", flat=True))
    kinds = dict(Hardware.objects.values_list("slug", "kind"))
    unmapped = sorted({r["hardware"] for r in rows if r["hardware"] not in kinds})
    unmapped += sorted({r["model_slug"] for r in rows if r["model_slug"] not in models})
    mapped = [r for r in rows if r["hardware"] in kinds and r["model_slug"] in models]

    first = load()
    assert len(first.unmapped) == len(rows) - len(mapped)
    runs = BenchmarkRun.objects.select_related("hardware")
    assert runs.count() == first.stored == len(mapped)
    # Counts by device kind are what the file says.
    expected = Counter(kinds[r["hardware"]] for r in mapped)
    assert Counter(run.hardware.kind for run in runs) == expected
    assert all(run.channel == Channel.SEED and run.source_url.startswith("https://") for run in runs)
    # The checks apply as to any submission: nearly all pass; the rest are held with their reason, never dropped.
    held = runs.exclude(status=Status.ACCEPTED)
    assert held.count() <= 0.03 * runs.count()
    assert all(run.status in (Status.FLAGGED, Status.PENDING) and run.status_reason for run in held)
    assert ModerationDecision.objects.count() == runs.count()
    # Several GPUs: the count is in gpu_info and the notes.
    four = runs.filter(gpu_info="4x NVIDIA A40").first()
    assert four is not None and "GPU count: 4" in four.notes

    decisions = ModerationDecision.objects.count()
    second = load()
    assert (second.stored, second.already) == (0, first.stored)
    assert BenchmarkRun.objects.count() == first.stored and ModerationDecision.objects.count() == decisions
    assert not unmapped, f"not in the catalog: {unmapped}"


@pytest.fixture
def small_catalog(db):
    model = make_model(slug="llama-2-7b", name="Llama 2 7B")
    make_quantization(model, name="Q4_0", bits_per_weight=4.5)
    make_hardware(slug="test-gpu-a", name="Test GPU A", bandwidth_gbps=1000.0)
    make_hardware(slug="test-mac", name="Test Mac", vendor="Apple", kind=HardwareKind.UNIFIED, bandwidth_gbps=400.0)
    return model


def _write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "runs.csv"
    path.write_text("# comment\n" + HEADER + "".join(line + "\n" for line in lines))
    return path


ROW_GPU = (
    "s,https://example.org/a,2024-05-09,test-gpu-a,2,Test GPU A,llama-2-7b,Q4_0,cuda,0,128,0,150.5,0.2,99,0,,,"
    "abc123,2824,"
)
ROW_MAC = "s,https://example.org/b,,test-mac,1,Mac,llama-2-7b,Q4_0,metal,512,0,0,530.06,0,99,,,,,,a note"


def test_it_stores_a_row_field_for_field(small_catalog, tmp_path):
    result = load(path=_write(tmp_path, ROW_GPU, ROW_MAC))
    assert (result.stored, result.already, result.unmapped) == (2, 0, [])
    run = BenchmarkRun.objects.get(hardware__slug="test-gpu-a")
    assert (run.n_prompt, run.n_gen, run.avg_ts, run.stddev_ts, run.decode_tps) == (0, 128, 150.5, 0.2, 150.5)
    assert (run.build_commit, run.runtime_version, run.n_gpu_layers, run.flash_attn) == ("abc123", "2824", 99, False)
    assert run.gpu_info == "2x Test GPU A" and "GPU count: 2" in run.notes
    assert run.test_time.date().isoformat() == "2024-05-09" and run.source_url == "https://example.org/a"
    mac = BenchmarkRun.objects.get(hardware__slug="test-mac")
    assert mac.prefill_tps == 530.06 and mac.test_time is None and mac.flash_attn is None
    assert "a note" in mac.notes and "no standard deviation" in mac.notes


def test_it_skips_rows_outside_the_catalog_and_says_so(small_catalog, tmp_path, capsys):
    path = _write(tmp_path, ROW_GPU, ROW_GPU.replace("test-gpu-a", "no-such-gpu"))
    call_command("load_public_runs", file=path)
    out, err = capsys.readouterr()
    assert "1 stored (1 accepted), 0 already there, 1 not in the catalog" in out
    assert "no-such-gpu" in err
    call_command("load_public_runs", file=path)
    assert "0 stored (none), 1 already there" in capsys.readouterr().out


def test_it_refuses_a_row_without_a_source_and_writes_nothing(small_catalog, tmp_path):
    path = _write(tmp_path, ROW_MAC, ROW_GPU.replace("https://example.org/a", ""))
    with pytest.raises(CommandError, match="row 2 lacks source_url"):
        load(path=path)
    assert not BenchmarkRun.objects.exists()


def test_it_refuses_a_row_the_form_refuses_and_writes_nothing(small_catalog, tmp_path):
    path = _write(tmp_path, ROW_MAC, ROW_GPU.replace(",150.5,", ",-3,"))
    with pytest.raises(CommandError, match="row 2"):
        load(path=path)
    assert not BenchmarkRun.objects.exists()
