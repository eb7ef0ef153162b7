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
