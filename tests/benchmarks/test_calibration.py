from __future__ import annotations

import pytest

from benchmarks import calibration
from benchmarks.models import BenchmarkRun, Status
from catalog import fit
from catalog.speed import DEFAULT_SPEED
from tests.benchmarks.conftest import make_run

pytestmark = pytest.mark.django_db


def _runs(user, values, source_prefix: str = "https://example.org/table"):
    runs = []
    for i, tps in enumerate(values):
        run = make_run(user=user, avg_ts=tps, stddev_ts=0.5, samples_ts=[tps - 0.5, tps, tps + 0.5], n_threads=2 + i)
        assert run.status == Status.ACCEPTED, run.status_reason
        # Published runs carry their source; each a source of its own here, so every one can be held out.
        BenchmarkRun.objects.filter(pk=run.pk).update(source_url=f"{source_prefix}/{i}")
        runs.append(run)
    return runs


def test_it_calibrates_the_catalog_estimates_from_accepted_runs(gemma, epyc, user):
    from catalog.services import fit_for, speed_model

    quant = gemma.quantizations.get()
    options = fit.FitOptions(ctx=128)
    default = fit_for(model=gemma, quant=quant, hardware=epyc, options=options, speed=DEFAULT_SPEED)
    _runs(user, (30.0, 31.0, 32.0))

    model = speed_model()
    assert model.params_for("cpu").decode_runs == 3
    assert "3 measured runs from 3 sources" in model.basis
    calibrated = fit_for(model=gemma, quant=quant, hardware=epyc, options=options)
    # The estimate now sits near the accepted runs instead of the starting point's figure.
    assert calibrated.est_decode_tps == pytest.approx(31.0, rel=0.05)
    assert abs(default.est_decode_tps - 31.0) > abs(calibrated.est_decode_tps - 31.0)


def test_it_holds_out_a_whole_source(gemma, epyc, user):
    run = _runs(user, (30.0,))[0]
    run.refresh_from_db()
    assert calibration.source_of(run) == "example.org/table/0"
    run.source_url = "https://github.com/ggml-org/llama.cpp/discussions/4167#discussioncomment-123"
    assert calibration.source_of(run) == "github.com/ggml-org/llama.cpp/discussions/4167"
    run.source_url = "https://github.com/brand-o/normiebench/issues/40"
    assert calibration.source_of(run) == "github.com/brand-o/normiebench"
    run.source_url = "https://github.com/XiongjieDai/GPU-Benchmarks-on-LLM-Inference/blob/aa72e0e/notebook.ipynb"
    assert calibration.source_of(run) == "github.com/XiongjieDai/GPU-Benchmarks-on-LLM-Inference"
    run.source_url = ""
    assert calibration.source_of(run) == f"submitter:{user.pk}"


def test_it_reads_the_gpu_count_the_public_runs_record():
    run = BenchmarkRun(notes="Published llama.cpp result (x). GPU count: 4 (llama.cpp's layer split across them).")
    assert calibration.gpu_count_of(run) == 4
    assert calibration.gpu_count_of(BenchmarkRun(notes="")) == 1


def test_it_reads_the_llama_cpp_build_number_a_run_stores():
    # llama-bench prints "build: 4426e298 (2824)"; the loader stores 2824 as runtime_version.
    assert calibration.build_number_of(BenchmarkRun(runtime_version="2824")) == 2824
    assert calibration.build_number_of(BenchmarkRun(runtime_version="b6918")) == 6918
    assert calibration.build_number_of(BenchmarkRun(runtime_version="")) is None
    assert calibration.build_number_of(BenchmarkRun(runtime_version="0.3.2")) is None


def test_it_scores_each_run_without_its_source(gemma, epyc, user):
    _runs(user, (30.0, 31.0, 45.0))
    result = calibration.accuracy()
    assert len(result.observations) == 3
    held_out = {p.obs.measured_tps: p.estimate_tps for p in result.predictions}
    # The 45 t/s run is predicted from the two near 30: well below 45.
    assert held_out[45.0] < 40.0
    rows = {(row.test, row.backend): row for row in result.table}
    assert rows[("tg", "cpu")].runs == 3 and rows[("tg", "cpu")].sources == 3


def test_it_shows_the_measured_median_to_the_catalog(gemma, epyc, user):
    from catalog import extensions

    _runs(user, (30.0, 31.0, 35.0))
    make_run(user=user, n_prompt=512, n_gen=0, avg_ts=400.0, samples_ts=[], n_threads=9)
    measured = extensions.measured_speeds()[(gemma.pk, "Q4_K_M", epyc.pk)]
    assert (measured.decode_tps, measured.decode_runs) == (31.0, 3)
    assert (measured.prefill_tps, measured.prefill_runs) == (400.0, 1)


def test_the_accuracy_page_shows_the_held_out_error_and_the_plot(client, gemma, epyc, user):
    empty = client.get("/benchmarks/accuracy/")
    assert "nothing to fit or score" in empty.content.decode()
    _runs(user, (40.0, 50.0, 60.0))
    page = client.get("/benchmarks/accuracy/").content.decode()
    assert "leave-one-source-out" in page and "Decode (tg)" in page
    svg = client.get("/benchmarks/plots/accuracy.svg").content.decode()
    assert svg.count('data-backend="cpu"') == 3
    assert client.get("/benchmarks/calibration/").status_code == 301
    assert client.post("/benchmarks/accuracy/").status_code == 405


def test_the_model_page_shows_the_band_and_the_measured_median(client, gemma, epyc, user):
    url = "/models/gemma-3-270m/?hardware=test-epyc&ctx=4096"
    before = client.get(url).content.decode()
    assert "no measured CPU runs back it yet" in before and "Measured:" not in before
    _runs(user, (30.0, 31.0, 35.0))
    page = client.get(url).content.decode()
    band = calibration.accuracy().model.params_for("cpu").decode_error_pct
    assert band is not None
    assert f'data-band="{band}"' in page and "80 % of 3 CPU runs fell within it" in page
    assert '<span class="measured" data-measured="31.0">Measured: <b>31.0 tok/s</b> decode' in page
    assert "median of 3 accepted runs of this model, quant and device" in page
    assert 'href="/benchmarks/accuracy/"' in page
    # The estimate is for a full 4,096-token context; the start of a conversation is faster.
    start = float(page.split('<span class="decode-start">')[1].split(" tok/s")[0])
    full = float(page.split('<b class="decode-tps">')[1].split(" tok/s")[0])
    assert start > full


def test_every_list_of_speeds_carries_its_band(client, gemma, epyc, user):
    from tests.factories import make_model, make_quantization

    other = make_model(name="Other 8B", slug="other-8b")
    make_quantization(other, name="Q4_K_M", bits_per_weight=4.89)
    assert "no measured CPU runs back them yet" in client.get("/hardware/test-epyc/").content.decode()
    _runs(user, (30.0, 31.0, 35.0))
    band = calibration.accuracy().model.params_for("cpu").decode_error_pct
    pages = ("/hardware/test-epyc/", "/models/?fits=test-epyc", "/compare/?models=gemma-3-270m&models=other-8b")
    for url in (*pages[:2], pages[2] + "&hardware=test-epyc"):
        page = client.get(url).content.decode()
        assert f'<span class="band" data-band="{band}">' in page, url
        assert "of 3 CPU runs fell within it" in page, url
