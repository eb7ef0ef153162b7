from __future__ import annotations

import pytest

from benchmarks.calibration import Point, calibrate


def test_it_fits_the_median_efficiency_per_backend_and_kind():
    points = [Point("cuda", "gpu", m, 100.0, default_estimate_tps=70.0) for m in (60.0, 70.0, 80.0)]
    points.append(Point("cpu", "cpu", 30.0, 60.0))
    cpu, cuda = calibrate(points)
    assert (cpu.backend, cpu.runs, cpu.efficiency, cpu.loo_mdape) == ("cpu", 1, 0.5, None)
    assert cuda.efficiency == pytest.approx(0.7)
    # leave-one-out factors: 0.75, 0.7, 0.65 -> errors 25 %, 0 %, 18.75 %
    assert cuda.loo_mdape == pytest.approx(18.75)
    assert cuda.loo_mape == pytest.approx((25 + 0 + 18.75) / 3)
    assert cuda.default_mdape == pytest.approx(12.5)  # errors 16.7 %, 0 %, 12.5 % against 60, 70, 80


def test_it_ignores_points_without_a_roofline():
    assert calibrate([Point("cpu", "cpu", 10.0, 0.0)]) == []


def test_it_replaces_a_kinds_efficiency_only_with_enough_runs():
    from benchmarks.calibration import MIN_RUNS_TO_APPLY, speed_model_from
    from catalog import fit

    # No per-token overhead, so each run's efficiency is exactly measured / roofline.
    base = fit.SpeedModel(per_token_overhead_s=0.0)
    gpu_points = [Point("cuda", "gpu", tps, 100.0) for tps in (50.0, 55.0, 60.0)]
    speed = speed_model_from(gpu_points[: MIN_RUNS_TO_APPLY - 1], base)
    assert speed == base
    speed = speed_model_from([*gpu_points, Point("cpu", "cpu", 30.0, 60.0)], base)
    assert speed.decode_efficiency_gpu == pytest.approx(0.55)
    assert speed.decode_efficiency_cpu == base.decode_efficiency_cpu  # one CPU run is not enough
    assert "gpu: 3 runs" in speed.basis


@pytest.mark.django_db
def test_it_calibrates_the_catalog_estimates_from_accepted_runs(gemma, epyc, user):
    from benchmarks.models import Status
    from catalog import fit
    from catalog.services import fit_for, speed_model
    from tests.benchmarks.conftest import make_run

    quant = gemma.quantizations.get()
    options = fit.FitOptions(ctx=128)
    default = fit_for(model=gemma, quant=quant, hardware=epyc, options=options, speed=fit.DEFAULT_SPEED)
    runs = [
        make_run(user=user, avg_ts=tps, stddev_ts=0.5, samples_ts=[tps - 0.5, tps, tps + 0.5]) for tps in (30, 31, 32)
    ]
    assert {run.status for run in runs} == {Status.ACCEPTED}

    assert "cpu: 3 runs" in speed_model().basis
    calibrated = fit_for(model=gemma, quant=quant, hardware=epyc, options=options)
    # The estimate now reproduces the median accepted run instead of the default factor's figure.
    assert calibrated.est_decode_tps == pytest.approx(31.0, rel=0.03)
    assert abs(default.est_decode_tps - 31.0) > abs(calibrated.est_decode_tps - 31.0)
