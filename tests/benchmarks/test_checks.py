from __future__ import annotations

import pytest

from benchmarks import selectors, services
from benchmarks.models import BenchmarkRun, ModerationDecision, Status
from tests.benchmarks.conftest import make_run
from tests.factories import make_hardware

pytestmark = pytest.mark.django_db


def test_decode_above_the_roofline_is_flagged_not_accepted(gemma, epyc, user):
    run = make_run(user=user, avg_ts=50.0, samples_ts=[])
    roofline = services.roofline_for(run)
    assert roofline is not None and 100 < roofline < 400  # ~240 MB read per token at 51.2 GB/s
    fast = make_run(user=user, avg_ts=roofline * 1.2, samples_ts=[], stddev_ts=0)
    assert fast.status == Status.FLAGGED
    assert "above the physical limit" in fast.status_reason
    near = make_run(user=user, avg_ts=roofline * 1.1, samples_ts=[], stddev_ts=0)
    assert near.status == Status.ACCEPTED  # within the 1.15 margin


def test_prompt_speed_is_not_held_to_the_decode_roofline(gemma, epyc, user):
    # 1000 t/s: five times the decode roofline (195 t/s), within the compute limit (716 t/s) x 2.
    run = make_run(user=user, n_prompt=512, n_gen=0, avg_ts=1000.0, samples_ts=[], stddev_ts=0)
    assert run.status == Status.ACCEPTED and run.prefill_tps == 1000.0 and run.decode_tps is None


def test_an_unknown_quant_is_held_not_accepted(gemma, epyc, user):
    run = make_run(user=user, quant="XQ9", avg_ts=999999.0, samples_ts=[], stddev_ts=0)
    assert run.status == Status.PENDING and "'XQ9' is unknown" in run.status_reason


def test_prompt_speed_above_the_compute_limit_is_flagged(gemma, epyc, user):
    run = make_run(user=user, n_prompt=512, n_gen=0, avg_ts=999999.0, samples_ts=[], stddev_ts=0)
    assert run.status == Status.FLAGGED and "compute limit" in run.status_reason
    ceiling = services.prefill_ceiling_for(run)
    assert ceiling is not None and 500 < ceiling < 1000  # 0.384 TFLOPS over 2 x the weight FLOPs per token


def test_prompt_speed_reported_with_a_generation_test_is_checked_too(gemma, epyc, user):
    run = make_run(user=user, n_prompt=512, n_gen=128, avg_ts=50.0, prompt_tps=999999.0, samples_ts=[])
    assert run.status == Status.FLAGGED and "compute limit" in run.status_reason


def test_prompt_speed_on_a_device_without_a_compute_figure_is_held(gemma, user):
    make_hardware(name="Mystery box", slug="mystery", fp16_tflops=None, matrix_tflops=None, int8_tops=None)
    run = make_run(user=user, hardware="mystery", n_prompt=512, n_gen=0, avg_ts=500.0, samples_ts=[], stddev_ts=0)
    assert run.status == Status.PENDING and "no compute figure" in run.status_reason


def test_a_combined_prompt_and_generation_rate_is_held(gemma, epyc, user):
    run = make_run(user=user, n_prompt=512, n_gen=128, avg_ts=999999.0, samples_ts=[], stddev_ts=0)
    assert run.status == Status.PENDING and "prompt_tps" in run.status_reason


def test_an_outlier_in_its_group_is_flagged_and_kept_out_of_aggregates(gemma, epyc, user, staff, django_user_model):
    for i, value in enumerate((50.0, 51.0, 49.0, 50.5)):  # four submitters: one vote each
        make_run(user=django_user_model.objects.create_user(username=f"u{i}"), avg_ts=value, samples_ts=[])
    slow = make_run(user=user, avg_ts=5.0, samples_ts=[], stddev_ts=0)
    assert slow.status == Status.FLAGGED and "modified z-score" in slow.status_reason
    other_runtime = make_run(user=user, avg_ts=5.0, samples_ts=[], stddev_ts=0, runtime="ollama")
    assert other_runtime.status == Status.ACCEPTED  # a different group
    [summary] = [s for s in selectors.model_summary(gemma) if s.runs == 5]
    assert summary.decode.median == 50.0 and summary.decode.low == 5.0  # ollama run counts, flagged one does not

    services.moderate(run=slow, moderator=staff, decision=Status.ACCEPTED, reason="Checked: thermal throttling")
    [summary] = selectors.model_summary(gemma)
    assert summary.runs == 6
    assert list(ModerationDecision.objects.filter(run=slow).values_list("from_status", "to_status")) == [
        ("flagged", "accepted"),
        ("", "flagged"),
    ]


def test_a_mixed_test_speed_counts_as_decode_only_with_a_separate_prompt_speed(gemma, epyc, user):
    combined = make_run(user=user, n_prompt=512, n_gen=128, avg_ts=120.0, samples_ts=[])
    assert combined.test == "pg" and combined.decode_tps is None and combined.prefill_tps is None
    split = make_run(user=user, n_prompt=16, n_gen=64, avg_ts=40.0, prompt_tps=300.0, ttft_ms=60.0, samples_ts=[])
    assert (split.decode_tps, split.prefill_tps) == (40.0, 300.0)


def test_the_aggregate_is_the_median_count_and_spread_with_the_estimate(gemma, epyc, user):
    for value in (40.0, 50.0, 70.0):
        make_run(user=user, avg_ts=value, samples_ts=[])
    make_run(user=user, n_prompt=512, n_gen=0, avg_ts=300.0, samples_ts=[])
    make_run(user=None, avg_ts=99.0, samples_ts=[])  # pending: not counted
    [summary] = selectors.model_summary(gemma)
    assert (summary.runs, summary.decode.median, summary.decode.low, summary.decode.high) == (4, 50.0, 40.0, 70.0)
    assert summary.prefill.median == 300.0
    assert summary.est_decode_tps is not None and summary.est_decode_tps > 0
    assert BenchmarkRun.objects.count() == 5
