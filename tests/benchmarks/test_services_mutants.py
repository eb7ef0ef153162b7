"""benchmarks.services, validation and limits: the tests mutation testing asked for (issue 14, docs/testing.md).

Expected values are worked out by hand here: the sliding-window estimate (current + previous x (1 - elapsed share)),
the wait until a request fits again, the KV bytes a decode step reads (Gemma 3 270M's config.json: 18 layers, one KV
head of 256, 15 sliding-window layers of 512 tokens), the margins the docstrings state. Never the function's own
answer fed back."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.db import OperationalError
from django.test import RequestFactory, override_settings

from benchmarks import llamabench, services
from benchmarks.models import BenchmarkRun, Channel, ModerationDecision, RateCount, Status
from tests.benchmarks.conftest import make_run, read_fixture, run_data
from tests.factories import make_hardware, make_model, make_quantization

pytestmark = pytest.mark.django_db


def _request(remote: str = "203.0.113.5", forwarded: str = "", user=None):
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    request = RequestFactory().post("/", REMOTE_ADDR=remote, **extra)
    if user is not None:
        request.user = user
    return request


# --- the sliding window -----------------------------------------------------------------------------------------------


def test_it_admits_up_to_the_limit_exactly_on_the_sliding_estimate():
    limit = (3, 60)
    # Two requests in window 1 (60..120 s); at 150 s, half of window 2 has passed, so they weigh 2 x (1 - 0.5) = 1.
    for now in (70.0, 80.0):
        services.check_rate(scope="s", key="k", limit=limit, now=now)
    services.check_rate(scope="s", key="k", limit=limit, now=150.0)  # 1 + 1 = 2 <= 3
    services.check_rate(scope="s", key="k", limit=limit, now=150.0)  # 2 + 1 = 3 <= 3: the limit itself is allowed
    with pytest.raises(services.RateLimited):
        services.check_rate(scope="s", key="k", limit=limit, now=150.0)  # 3 + 1 = 4 > 3


def test_it_counts_each_scope_and_key_apart():
    limit = (1, 60)
    services.check_rate(scope="ip", key="a", limit=limit, now=10.0)
    services.check_rate(scope="ip", key="b", limit=limit, now=10.0)  # another client
    services.check_rate(scope="user", key="a", limit=limit, now=10.0)  # another limit
    with pytest.raises(services.RateLimited):
        services.check_rate(scope="ip", key="a", limit=limit, now=10.0)


def test_it_refuses_a_request_larger_than_the_limit_outright():
    with pytest.raises(services.RateLimited) as refused:
        services.check_rate(scope="c", key="k", limit=(5, 3600), cost=6, now=0.0)
    assert refused.value.retry_after == 3600
    assert str(refused.value) == "This request holds 6 runs; the limit is 5 every 3600 s."
    services.check_rate(scope="c", key="k", limit=(5, 3600), cost=5, now=0.0)  # exactly the limit: let in


def test_it_charges_the_cost_and_refunds_a_refused_request():
    limit = (10, 60)
    key = services.check_rate(scope="r", key="k", limit=limit, cost=7, now=5.0)
    assert key.startswith("bench:rate:r:") and key.endswith(":0")  # window 0: 5 // 60
    with pytest.raises(services.RateLimited) as refused:
        services.check_rate(scope="r", key="k", limit=limit, cost=4, now=6.0)  # 7 + 4 = 11 > 10
    # Refused, not counted: 7 stay. At 60 s (window 1, elapsed 0) they weigh 7, so 4 more (11) wait; 3 fit now.
    assert str(refused.value) == f"Too many submissions; retry in {refused.value.retry_after} s."
    # When 4 fit: window 0 holds 7, nothing before it. Not in this window (7 + 4 > 10); in window 1 (from 60 s) the 7
    # must fade to 10 - 4 = 6: 7 x (1 - e) <= 6 from e = 1/7, at 60 x (1 + 1/7) = 68.57 s; now 6 s: 62.57 -> 63.
    assert refused.value.retry_after == 63
    services.check_rate(scope="r", key="k", limit=limit, cost=3, now=6.0)  # 7 + 3 = 10 <= 10
    services.refund_rate(key, 3)
    services.check_rate(scope="r", key="k", limit=limit, cost=3, now=7.0)  # the refund made room again


def test_it_names_the_window_in_the_key_it_charges():
    first = services.check_rate(scope="w", key="k", limit=(5, 60), now=59.0)
    second = services.check_rate(scope="w", key="k", limit=(5, 60), now=60.0)
    # 59 // 60 = 0, 60 // 60 = 1; the key hashes the client: sha256("k") starts 8254c329a92850f6.
    assert first == "bench:rate:w:8254c329a92850f6d539dd376f4816ee:0"
    assert second == "bench:rate:w:8254c329a92850f6d539dd376f4816ee:1"


@pytest.mark.parametrize(
    ("current", "previous", "count_max", "now", "cost", "expected"),
    [
        # Room left in this window as the previous fades: limit 10, 4 here, the next one makes 5, room 10 - 4 - 1 = 5
        # for the previous window's 8 x (1 - e): e = 1 - 5/8 = 0.375 of window [60, 120): at 82.5 s; now 70: 12.5 -> 13.
        (4, 8, 10, 70.0, 1, 13),
        # The same with a cost of 3: room 3, e = 1 - 3/8 = 0.625: at 97.5 s; now 70: 27.5 -> 28.
        (4, 8, 10, 70.0, 3, 28),
        # No room: 10 here already; next window (from 120 s), this window's 10 must fade to 10 - 1 = 9:
        # fade = 1 - 9/10 = 0.1: at 120 + 6 = 126 s; now 70: 56.
        (10, 0, 10, 70.0, 1, 56),
        # No previous count and room: the formula's second branch with fade max(0, 1 - 9/2) = 0: at 120 s: 50.
        (2, 0, 10, 70.0, 1, 50),
        # Admitted at once by the arithmetic (at <= now): at least one second.
        (0, 1, 10, 119.9, 1, 1),
    ],
)
def test_it_says_when_a_refused_request_would_fit(current, previous, count_max, now, cost, expected):
    assert services._seconds_until_admitted(current, previous, count_max, 60, now, cost) == expected


def test_it_tells_a_refused_client_when_to_come_back():
    limit = (2, 60)
    services.check_rate(scope="t", key="k", limit=limit, now=61.0)
    services.check_rate(scope="t", key="k", limit=limit, now=62.0)
    with pytest.raises(services.RateLimited) as refused:
        services.check_rate(scope="t", key="k", limit=limit, now=90.0)
    # 2 in window [60, 120), limit 2: one more fits when this window's 2 weigh at most 1, from 120 + 60 x (1 - 1/2)
    # = 150 s: 60 s after 90.
    assert refused.value.retry_after == 60


def test_it_fails_closed_when_the_counts_cannot_be_read(monkeypatch, caplog):
    from redis.exceptions import ConnectionError as RedisConnectionError

    class Down:
        def add(self, *args, **kwargs):
            raise RedisConnectionError("connection refused")

        def decr(self, *args, **kwargs):
            raise RedisConnectionError("connection refused")

    monkeypatch.setattr(services, "_limits", lambda: Down())
    with pytest.raises(services.LimiterUnavailable) as refused:
        services.check_rate(scope="d", key="k", limit=(5, 60), now=0.0)
    assert refused.value.retry_after == 30
    assert str(refused.value) == (
        "Submissions are paused: the rate limiter's store is unreachable. Please retry shortly."
    )
    assert caplog.records[-1].getMessage() == (
        "Rate limiter store unreachable; refusing submissions: connection refused"
    )
    services.refund_rate("bench:rate:d:x:0", 1)  # a refund against a store that is down does not raise


# --- who is charged what ----------------------------------------------------------------------------------------------


@override_settings(RIGFIT_BENCH_RATE_IP=(5, 3600), RIGFIT_BENCH_RATE_TOKEN=(8, 3600))
def test_it_charges_an_anonymous_client_every_run_against_its_address():
    services.check_submission_rate(request=_request(), runs=3, now=10.0)
    services.check_submission_rate(request=_request(), runs=2, now=10.0)  # 5 of 5
    with pytest.raises(services.RateLimited):
        services.check_submission_rate(request=_request(), runs=1, now=10.0)
    services.check_submission_rate(request=_request("198.51.100.1"), runs=5, now=10.0)  # another address


@override_settings(RIGFIT_BENCH_RATE_IP=(2, 3600), RIGFIT_BENCH_RATE_TOKEN=(8, 3600))
def test_it_charges_a_signed_in_user_one_per_request_on_the_address_and_every_run_on_the_user(user):
    request = _request(user=user)
    services.check_submission_rate(request=request, runs=5, now=10.0)  # address: 1 of 2; user: 5 of 8
    with pytest.raises(services.RateLimited):
        services.check_submission_rate(request=request, runs=4, now=10.0)  # user: 9 > 8 (address refunded: 1)
    services.check_submission_rate(request=request, runs=3, now=10.0)  # address 2 of 2, user 8 of 8
    with pytest.raises(services.RateLimited):
        services.check_submission_rate(request=request, runs=0, now=10.0)  # address: 3 > 2


@override_settings(RIGFIT_BENCH_RATE_IP=(100, 3600), RIGFIT_BENCH_RATE_TOKEN=(4, 3600))
def test_it_charges_a_tokens_user_whoever_sends_the_request(token):
    api_token, _ = token
    services.check_submission_rate(request=_request(), token=api_token, runs=4, now=10.0)
    with pytest.raises(services.RateLimited):
        services.check_submission_rate(request=_request("198.51.100.1"), token=api_token, runs=1, now=10.0)


def test_it_caps_the_runs_per_request_at_fifty_unless_set():
    assert services.max_runs_per_request() == 50
    with override_settings(RIGFIT_BENCH_MAX_RUNS_PER_REQUEST="7"):
        assert services.max_runs_per_request() == 7


def test_it_reads_the_client_address_where_no_proxy_speaks():
    assert services.client_ip(_request("")) == "unknown"
    with override_settings(RIGFIT_TRUSTED_PROXIES=["10.0.0.0/8", "2001:db8::/32"]):
        assert services.client_ip(_request("10.0.0.2")) == "10.0.0.2"  # our proxy, no header: the proxy itself
        assert services.client_ip(_request("10.0.0.2", "10.0.0.7, 10.1.2.3")) == "10.0.0.2"  # only proxies in it
        assert services.client_ip(_request("2001:db8::1", "2001:db9::5")) == "2001:db9::5"
        assert services.client_ip(_request("10.0.0.2", " , 198.51.100.4 ,")) == "198.51.100.4"


# --- the checks a run goes through ------------------------------------------------------------------------------------


def _gemma_kv_read(ctx: int, bytes_per_value: float) -> float:
    # Gemma 3 270M: 18 layers, 1 KV head x 256 values for K and for V; 15 layers slide over 512 tokens, 3 are global.
    per_token = 2 * 1 * 256 * bytes_per_value
    return per_token * (3 * ctx + 15 * min(ctx, 512))


def test_it_checks_decode_at_the_runs_depth_and_kv_type(gemma, epyc, user):
    shallow = make_run(user=user, samples_ts=[], stddev_ts=0, n_depth=0, avg_ts=50.0)
    deep = make_run(user=user, samples_ts=[], stddev_ts=0, n_depth=4096, avg_ts=50.5)
    q8 = make_run(user=user, samples_ts=[], stddev_ts=0, n_depth=4096, type_k="q8_0", avg_ts=50.25)
    bandwidth = 51.2e9  # the test EPYC's bytes per second
    # bytes read per token = bandwidth / roofline; their difference is the KV read at each context:
    # tg128 at depth 0 reads the KV of ctx = max(1, 0 + 0) = 1 token; at depth 4096 of 4096 tokens.
    shallow_read = bandwidth / services.roofline_for(shallow)
    deep_read = bandwidth / services.roofline_for(deep)
    assert deep_read - shallow_read == pytest.approx(_gemma_kv_read(4096, 2) - _gemma_kv_read(1, 2), rel=1e-9)
    # q8_0 stores 32 values in 34 bytes (1.0625 bytes a value) instead of f16's 2.
    q8_read = bandwidth / services.roofline_for(q8)
    assert deep_read - q8_read == pytest.approx(_gemma_kv_read(4096, 2) - _gemma_kv_read(4096, 34 / 32), rel=1e-9)
    # The other cache types llama.cpp's -ctk takes and the catalog knows: f32 4 bytes a value, bf16 2, q4_0 18
    # bytes per 32 values (0.5625), each read at its own size.
    for type_k, bytes_per_value in (("f32", 4), ("bf16", 2), ("q4_0", 18 / 32)):
        other = make_run(user=user, samples_ts=[], stddev_ts=0, n_depth=4096, type_k=type_k, avg_ts=50.25)
        other_read = bandwidth / services.roofline_for(other)
        expected = _gemma_kv_read(4096, bytes_per_value) - _gemma_kv_read(4096, 2)
        assert other_read - deep_read == pytest.approx(expected, rel=1e-9, abs=1e-3)


def test_it_counts_the_prompt_in_the_context_of_a_mixed_test(gemma, epyc, user):
    mixed = make_run(
        user=user, samples_ts=[], stddev_ts=0, n_prompt=512, n_gen=128, n_depth=1024, prompt_tps=400.0, avg_ts=50.0
    )
    plain = make_run(user=user, samples_ts=[], stddev_ts=0, n_depth=0, avg_ts=50.5)
    read = 51.2e9 / services.roofline_for(mixed) - 51.2e9 / services.roofline_for(plain)
    assert read == pytest.approx(_gemma_kv_read(1536, 2) - _gemma_kv_read(1, 2), rel=1e-9)  # 1024 + 512 tokens


def test_it_checks_an_unknown_kv_type_as_f16(gemma, epyc, user):
    run = services.build_run(cleaned={**_cleaned(gemma), "type_k": "q5_1"})
    f16 = services.build_run(cleaned={**_cleaned(gemma), "type_k": "f16"})
    assert services.roofline_for(run) == services.roofline_for(f16)


def _cleaned(model, **overrides):
    from benchmarks.forms import RunForm

    form = RunForm(run_data(**{"samples_ts": [], "stddev_ts": 0, **overrides}))
    assert form.is_valid(), form.errors
    return form.cleaned_data


def test_it_accepts_decode_up_to_the_roofline_margin_and_flags_beyond(gemma, epyc, user, settings):
    roofline = services.roofline_for(make_run(user=user, samples_ts=[], stddev_ts=0, avg_ts=1.0))
    settings.RIGFIT_BENCH_ROOFLINE_MARGIN = 1.5
    at_margin = services.build_run(cleaned=_cleaned(gemma, avg_ts=roofline * 1.5 * 0.999999))
    verdict = services.assess(at_margin, trusted=True)
    assert verdict.status == Status.ACCEPTED and verdict.roofline_tps == pytest.approx(roofline)
    assert verdict.checks == [f"decode within the roofline ({roofline:.1f} t/s)"]
    assert verdict.reason == "Passed the automatic checks."
    assert verdict.prefill_ceiling_tps is None  # a tg test reports no prompt speed: no compute limit to show
    exactly = services.build_run(cleaned=_cleaned(gemma, avg_ts=roofline * 1.5))
    assert services.assess(exactly, trusted=True).status == Status.ACCEPTED  # "up to" the margin: the limit itself
    beyond = services.build_run(cleaned=_cleaned(gemma, avg_ts=roofline * 1.5 * 1.000001))
    flagged = services.assess(beyond, trusted=True)
    assert flagged.status == Status.FLAGGED and flagged.roofline_tps == pytest.approx(roofline)
    assert flagged.reason == (
        f"Decode {roofline * 1.5 * 1.000001:.1f} t/s is above the physical limit of {roofline:.1f} t/s "
        "(51.2 GB/s over the bytes read per token) x 1.5."
    )


def test_it_accepts_prompt_speed_up_to_twice_the_compute_limit(gemma, epyc, user, settings):
    del settings.RIGFIT_BENCH_PREFILL_MARGIN  # docs/api.md: the compute limit "x 2" where the setting is absent
    prompt = make_run(user=user, samples_ts=[], stddev_ts=0, n_prompt=512, n_gen=0, avg_ts=1.0)
    ceiling = services.prefill_ceiling_for(prompt)
    roofline = services.roofline_for(prompt)  # the decode limit, shown to the moderator with every verdict
    # The test EPYC's 0.384 TFLOPS over 2 x 268M weights' FLOPs per token (plus attention): several hundred t/s.
    assert 300 < ceiling < 800
    inside = services.assess(
        services.build_run(cleaned=_cleaned(gemma, n_prompt=512, n_gen=0, avg_ts=ceiling * 1.99)), trusted=True
    )
    assert inside.status == Status.ACCEPTED and inside.prefill_ceiling_tps == pytest.approx(ceiling)
    assert inside.checks == [f"prompt speed within the compute limit ({ceiling:.1f} t/s)"]
    exactly = services.build_run(cleaned=_cleaned(gemma, n_prompt=512, n_gen=0, avg_ts=ceiling * 2))
    assert services.assess(exactly, trusted=True).status == Status.ACCEPTED  # "up to": the limit itself passes
    beyond = services.assess(
        services.build_run(cleaned=_cleaned(gemma, n_prompt=512, n_gen=0, avg_ts=ceiling * 2.01)), trusted=True
    )
    assert beyond.status == Status.FLAGGED and beyond.prefill_ceiling_tps == pytest.approx(ceiling)
    assert beyond.roofline_tps == pytest.approx(roofline)
    assert beyond.reason.startswith(
        f"Prompt processing {ceiling * 2.01:.1f} t/s is above the compute limit of {ceiling:.1f}"
    )
    assert beyond.reason.endswith("x 2.")


def test_it_holds_what_it_cannot_check_and_says_why(gemma, epyc, user):
    unknown_hw = services.assess(
        services.build_run(cleaned=_cleaned(gemma, hardware="Mystery Card 9000")), trusted=True
    )
    assert unknown_hw.status == Status.PENDING
    assert unknown_hw.reason == "Hardware 'Mystery Card 9000' is not in the catalog; held for review."
    assert unknown_hw.z_score is None  # no group to compare with on a device the catalog lacks
    assert unknown_hw.checks == []  # nothing checked (no device to check against), an empty list, not None
    anonymous = services.assess(services.build_run(cleaned=_cleaned(gemma)), trusted=False)
    assert (
        anonymous.status == Status.PENDING and anonymous.reason == "Anonymous submission; a moderator will review it."
    )
    assert anonymous.roofline_tps is not None and anonymous.checks  # the checks ran all the same
    combined_run = services.build_run(cleaned=_cleaned(gemma, n_prompt=512, n_gen=128))
    combined = services.assess(combined_run, trusted=True)
    assert combined.status == Status.PENDING
    assert combined.reason == (
        "A prompt + generation test without prompt_tps reports llama-bench's combined rate, which no limit "
        "checks; held for review (send prompt_tps, or the pp and tg tests apart)."
    )
    assert combined.roofline_tps == pytest.approx(services.roofline_for(combined_run))  # shown to the moderator
    no_compute = make_hardware(name="No compute", slug="no-compute", kind="cpu", fp16_tflops=None, matrix_tflops=None)
    held = services.assess(
        services.build_run(cleaned=_cleaned(gemma, hardware=no_compute.slug, n_prompt=512, n_gen=0)), trusted=True
    )
    assert held.status == Status.PENDING
    assert held.reason == "No compute states no compute figure, so the prompt speed cannot be checked; held for review."
    held_run = services.build_run(cleaned=_cleaned(gemma, hardware=no_compute.slug, n_prompt=512, n_gen=0))
    assert held.roofline_tps is not None and held.roofline_tps == pytest.approx(services.roofline_for(held_run))


def test_it_holds_a_decode_speed_on_a_device_with_no_bandwidth_figure(gemma, user, monkeypatch):
    make_hardware(name="Odd", slug="odd", kind="cpu", fp16_tflops=None)
    run = services.build_run(cleaned=_cleaned(gemma, hardware="odd"))
    monkeypatch.setattr(services, "roofline_for", lambda run: None)
    verdict = services.assess(run, trusted=True)
    assert verdict.status == Status.PENDING
    assert verdict.reason == "The decode speed cannot be checked against the device's bandwidth; held for review."


def test_it_flags_an_outlier_among_other_submitters_runs(gemma, epyc, django_user_model):
    # Five submitters at 50, 51, 52, 53, 54 t/s, and the new run at 80 (the group counts it): median 52.5,
    # |deviations| 2.5, 1.5, 0.5, 0.5, 1.5, 27.5 with median (MAD) 1.5; modified z = 0.6745 x 27.5 / 1.5 = 12.37.
    for i, speed in enumerate((50.0, 51.0, 52.0, 53.0, 54.0)):
        member = django_user_model.objects.create_user(username=f"u{i}", password="s3cret-pass-42")
        make_run(user=member, avg_ts=speed, samples_ts=[], stddev_ts=0)
    verdict = services.assess(services.build_run(cleaned=_cleaned(gemma, avg_ts=80.0)), trusted=True)
    assert verdict.status == Status.FLAGGED and verdict.z_score == pytest.approx(0.6745 * 27.5 / 1.5)
    assert verdict.reason == "Outlier among 5 submitters' runs of the same setup (modified z-score +12.4, limit ±3.5)."
    # 52.5 among them: median 52.25, |deviations| 2.25, 1.25, 0.25, 0.75, 1.75, 0.25, MAD 1.0: z = 0.6745 x 0.25.
    fair = services.assess(services.build_run(cleaned=_cleaned(gemma, avg_ts=52.5)), trusted=True)
    assert fair.status == Status.ACCEPTED and fair.z_score == pytest.approx(0.6745 * 0.25)
    assert fair.checks[-1] == "modified z-score +0.2 among 5 submitters' runs"
    other_depth = services.assess(services.build_run(cleaned=_cleaned(gemma, avg_ts=80.0, n_depth=512)), trusted=True)
    assert other_depth.status == Status.ACCEPTED  # another setup: not compared


# --- matching and fingerprints ----------------------------------------------------------------------------------------


def test_it_matches_hardware_by_slug_name_vendor_and_alias(epyc):
    assert services.match_hardware("test-epyc") == epyc
    assert services.match_hardware("TEST EPYC") == epyc
    assert services.match_hardware("AMD Test-EPYC") == epyc  # vendor + name, punctuation ignored
    assert services.match_hardware("amd epyc test box") == epyc  # an alias
    assert services.match_hardware("  ") is None and services.match_hardware("Intel Test EPYC") is None


def test_it_matches_a_quant_whatever_its_case(gemma):
    assert services.match_quant(gemma, "q4_k_m").name == "Q4_K_M"
    assert services.match_quant(gemma, "Q8_0") is None


def test_it_fingerprints_what_was_measured_not_the_notes_or_the_spelling_of_the_device(gemma, epyc):
    base = _cleaned(gemma)
    same = services.payload_sha256({**base, "notes": "second try", "hardware": "TEST-epyc", "power_watts": None})
    assert services.payload_sha256(base) == same
    assert services.payload_sha256({**base, "avg_ts": 50.1}) != services.payload_sha256(base)
    assert services.payload_sha256({**base, "model_slug": make_model()}) != services.payload_sha256(base)
    assert len(services.payload_sha256(base)) == 64


def _identity(filename="", model_type="", n_params=None):
    return llamabench.Identity(filename=filename, model_type=model_type, n_params=n_params, size_bytes=None, quant="")


def test_it_recognises_a_model_by_file_then_size_then_name(gemma):
    llama = make_model(name="Llama", slug="llama-3-1-8b", family="llama")
    qwen = make_model(name="Qwen", slug="qwen2-5-7b", family="qwen2", n_params=7_615_616_512)
    assert services.recognise_model(_identity("GEMMA-3-270M-Q4_K_M.gguf")) == gemma  # the quant's own file name
    assert services.recognise_model(_identity("x.gguf", n_params=7_615_616_512)) == qwen  # the exact count
    # 8.3e9 is 3.4 % off Llama's 8,030,261,248 and 9 % off Qwen's 7,615,616,512: only Llama is within 5 %.
    assert services.recognise_model(_identity("x.gguf", n_params=8_300_000_000)) == llama
    twin = make_model(name="Llama twin", slug="mistral-8b", family="mistral")
    # Two models within 5 %: the file name's words pick the family.
    assert services.recognise_model(_identity("Mistral-8B.Q4_K_M.gguf", n_params=8_000_000_000)) == twin
    assert services.recognise_model(_identity("llama 8B Q4_K_M", n_params=8_000_000_000)) == llama
    assert services.recognise_model(_identity("qwen2-5-7b-instruct.gguf")) == qwen  # the slug in the name
    with pytest.raises(services.Unrecognised) as unknown:
        services.recognise_model(_identity("", "mystery 3B Q4_0", 3_000_000_000))
    assert str(unknown.value) == (
        "Could not recognise the model from 'mystery 3B Q4_0' (3000000000 parameters); choose it in the form."
    )
    with pytest.raises(services.Unrecognised, match=r"from 'x.gguf' \(unknown parameters\)"):
        services.recognise_model(_identity("x.gguf"))


# --- a pasted llama-bench output --------------------------------------------------------------------------------------


def test_it_refuses_more_tests_than_the_cap_before_charging(gemma, epyc, user, settings):
    text = read_fixture(_some_fixture())
    count = len(llamabench.parse(text))
    charged = []
    settings.RIGFIT_BENCH_MAX_RUNS_PER_REQUEST = count - 1
    with pytest.raises(llamabench.LlamaBenchError) as refused:
        services.submit_llama_bench(
            text=text, hardware="test-epyc", channel=Channel.WEB, submitter=user, charge=charged.append
        )
    assert (
        str(refused.value)
        == f"The output holds {count} tests; at most {count - 1} per submission (send the rest separately)."
    )
    assert charged == [] and not BenchmarkRun.objects.exists()
    settings.RIGFIT_BENCH_MAX_RUNS_PER_REQUEST = count
    result = services.submit_llama_bench(
        text=text,
        hardware="test-epyc",
        channel=Channel.WEB,
        submitter=user,
        charge=charged.append,
        model_slug="gemma-3-270m",
        quant="Q4_K_M",
    )
    assert charged == [count] and len(result.stored) + len(result.errors) >= 1


def _some_fixture() -> str:
    from tests.benchmarks.conftest import FIXTURES

    for path in sorted(FIXTURES.glob("*.json")):
        return path.name
    raise AssertionError("no llama-bench fixture")


# --- moderation and visibility ----------------------------------------------------------------------------------------


def test_it_records_who_moved_a_run_from_which_status_and_why(gemma, epyc, user, staff):
    run = make_run(user=None, samples_ts=[], stddev_ts=0, avg_ts=50.0)  # anonymous: pending
    assert run.status == Status.PENDING
    record = services.moderate(run=run, moderator=staff, decision=Status.ACCEPTED, reason="  Looks right.  ")
    assert (record.from_status, record.to_status, record.reason, record.moderator) == (
        Status.PENDING,
        Status.ACCEPTED,
        "Looks right.",
        staff,
    )
    run.refresh_from_db()
    assert (run.status, run.status_reason) == (Status.ACCEPTED, "Looks right.")
    long = services.moderate(run=run, moderator=staff, decision=Status.REJECTED, reason="x" * 400)
    assert len(long.reason) == 300 and long.from_status == Status.ACCEPTED
    with pytest.raises(ValueError, match=r"A reason is required\."):
        services.moderate(run=run, moderator=staff, decision=Status.ACCEPTED, reason="   ")
    with pytest.raises(ValueError, match="Unknown decision 'flagged'"):
        services.moderate(run=run, moderator=staff, decision="flagged", reason="no")
    assert ModerationDecision.objects.filter(run=run).count() == 3  # the automatic one and two decisions


def test_it_shows_a_rejected_run_to_its_submitter_and_moderators_only(gemma, epyc, user, staff, django_user_model):
    run = make_run(user=user, samples_ts=[], stddev_ts=0, avg_ts=50.0)
    other = django_user_model.objects.create_user(username="bob", password="s3cret-pass-42")
    assert services.run_visible_to(run=run, user=None)  # accepted: everyone
    services.moderate(run=run, moderator=staff, decision=Status.REJECTED, reason="bad")
    run.refresh_from_db()
    from django.contrib.auth.models import AnonymousUser

    assert not services.run_visible_to(run=run, user=None)
    assert not services.run_visible_to(run=run, user=AnonymousUser())
    assert not services.run_visible_to(run=run, user=other)
    assert services.run_visible_to(run=run, user=user) and services.run_visible_to(run=run, user=staff)


def test_it_authenticates_only_a_live_token_of_an_active_user(user):
    token, raw = services.token_create(user=user, name="laptop")
    # 32 random bytes in URL-safe base64 without padding: ceil(32 x 4 / 3) = 43 characters after "rfb_".
    assert raw.startswith("rfb_") and token.prefix == raw[:10] and len(raw) == 4 + 43
    assert services.token_authenticate(raw="") is None
    found = services.token_authenticate(raw=raw)
    assert found == token
    token.refresh_from_db()
    assert token.last_used_at is not None
    user.is_active = False
    user.save()
    assert services.token_authenticate(raw=raw) is None
    user.is_active = True
    user.save()
    services.token_revoke(token=token)
    revoked_at = token.revoked_at
    services.token_revoke(token=token)  # revoking twice keeps the first time
    assert token.revoked_at == revoked_at is not None
    assert services.token_authenticate(raw=raw) is None


def test_it_counts_in_the_default_cache_where_no_limits_cache_is_set():
    from django.core.cache import caches

    locmem = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    with override_settings(CACHES={"default": locmem}):
        # A LocMemCache without LOCATION is one store per process ("" in locmem's module dict) that the autouse
        # fixture does not clear: empty it here, or a count left by an earlier run in the same process (mutmut runs
        # pytest several times in one) refuses the first request.
        caches["default"].clear()
        try:
            assert services._limits() is caches["default"]
            services.check_rate(scope="n", key="k", limit=(1, 60), now=0.0)
            with pytest.raises(services.RateLimited):
                services.check_rate(scope="n", key="k", limit=(1, 60), now=1.0)
        finally:
            caches["default"].clear()


def test_it_recognises_a_model_exactly_5_percent_off_its_parameter_count_and_not_one_more():
    round_8b = make_model(name="Round", slug="round-8b", family="round", n_params=8_000_000_000)
    # 5 % of the catalog's 8,000,000,000 is 400,000,000: 8,400,000,000 and 7,600,000,000 are exactly 5 % off.
    assert services.recognise_model(_identity("x.gguf", n_params=8_400_000_000)) == round_8b
    assert services.recognise_model(_identity("x.gguf", n_params=7_600_000_000)) == round_8b
    for n_params in (8_400_000_001, 7_599_999_999):  # one parameter beyond, either side
        with pytest.raises(services.Unrecognised):
            services.recognise_model(_identity("x.gguf", n_params=n_params))


def test_it_recognises_a_model_by_its_quants_file_name_alone():
    qwen = make_model(name="Qwen", slug="qwen2-5-7b", family="qwen2", n_params=7_615_616_512)
    make_quantization(qwen, name="Q4_K_M", bits_per_weight=None, file_name="custom-build.gguf")
    # No parameter count and no slug in the name: only the stored file name can tell.
    assert services.recognise_model(_identity("Custom-Build.GGUF")) == qwen


def test_it_prefers_the_model_whose_family_the_file_names_among_close_sizes():
    # Two models within 5 % of 8e9 parameters; the file names the family "llama" (whose slug does not start with it).
    llama = make_model(name="Llama", slug="meta-llama-3-8b", family="llama")
    make_model(name="Mistral", slug="mistral-8b", family="mistral")
    assert services.recognise_model(_identity("llama-8b.Q4_K_M.gguf", n_params=8_000_000_000)) == llama


def test_it_asks_for_the_quant_when_the_output_does_not_name_one(gemma, epyc, user):
    import json

    record = json.loads(read_fixture("gemma3-270m-q4_k_m-cpu.json"))[0]
    record.update(model_filename="", model_type="gemma3 270M")  # no file name, no ftype
    with pytest.raises(services.Unrecognised) as unknown:
        services.submit_llama_bench(
            text=json.dumps([record]), hardware="test-epyc", channel=Channel.WEB, submitter=user, model_slug=gemma.slug
        )
    assert str(unknown.value) == "Could not recognise the quantization from the output; enter it in the form."


def test_it_uses_the_documented_defaults_where_the_settings_are_absent(settings):
    del settings.RIGFIT_BENCH_RATE_IP
    del settings.RIGFIT_BENCH_RATE_STORE
    del settings.RIGFIT_BENCH_MAX_RUNS_PER_REQUEST
    assert isinstance(services._counts(), services._CacheCounts)  # default store: the limits cache
    assert services.max_runs_per_request() == 50  # docs/api.md: "More than 50 tests in one llama-bench output"
    # Default address limit: 30 runs an hour (DEFAULT_RATE_IP).
    services.check_submission_rate(request=_request(), runs=30, now=10.0)
    with pytest.raises(services.RateLimited):
        services.check_submission_rate(request=_request(), runs=1, now=10.0)


@override_settings(RIGFIT_BENCH_RATE_IP=(2, 3600))
def test_it_charges_the_address_at_the_time_it_is_given():
    services.check_submission_rate(request=_request(), runs=2, now=10.0)
    with pytest.raises(services.RateLimited):
        services.check_submission_rate(request=_request(), runs=1, now=20.0)
    # Two hours later both windows that held the first runs have passed: let in.
    services.check_submission_rate(request=_request(), runs=2, now=10.0 + 2 * 3600)


def test_it_starts_a_count_again_when_the_key_expired_between_add_and_incr(monkeypatch):
    class Expiring:
        """A store in which the key is gone by the time incr runs (Redis expired it in between)."""

        def __init__(self):
            self.set_calls = []

        def add(self, key, value, timeout=None):
            return True

        def incr(self, key, delta=1):
            raise ValueError(f"Key '{key}' not found.")

        def set(self, key, value, timeout=None):
            self.set_calls.append((key, value, timeout))

    store = Expiring()
    monkeypatch.setattr(services, "_limits", lambda: store)
    assert services._CacheCounts().incr("bench:rate:x:k:0", 3, 121) == 3
    assert store.set_calls == [("bench:rate:x:k:0", 3, 121)]


def test_it_knows_no_roofline_for_a_quant_it_cannot_size(gemma, epyc):
    # "XQ9": no catalog row (no file size, no bits) and no llama.cpp type of that name: nothing to divide by.
    run = services.build_run(cleaned=_cleaned(gemma, quant="XQ9"))
    assert run.quantization is None and services.roofline_for(run) is None


def test_it_logs_a_roofline_the_engine_refuses_and_goes_on(gemma, epyc, caplog):
    run = services.build_run(cleaned=_cleaned(gemma))
    run.hardware.bandwidth_gbps = 0.0  # a device row without a bandwidth: the engine refuses to divide by it
    assert services.roofline_for(run) is None
    (record,) = [r for r in caplog.records if r.getMessage().startswith("No roofline")]
    assert record.getMessage() == "No roofline for run of Gemma 3 270M Q4_K_M"
    assert record.exc_info[0] is ValueError  # with the traceback


def test_it_fingerprints_compact_key_sorted_json(gemma):
    import hashlib

    cleaned = {
        "model_slug": gemma,
        "hardware": "Test-EPYC",
        "quant": "Q4_K_M",
        "avg_ts": 50.0,
        "notes": "x",
        "n_gen": None,
        "runtime_version": "",
        "samples_ts": [],
    }
    # Written out by hand: keys sorted, no spaces, notes and empty values left out, the model by its slug, the device
    # name lower-cased without punctuation. Stored fingerprints depend on this exact text.
    blob = '{"avg_ts":50.0,"hardware":"testepyc","model_slug":"gemma-3-270m","quant":"Q4_K_M"}'
    assert services.payload_sha256(cleaned) == hashlib.sha256(blob.encode()).hexdigest()


def test_it_holds_decode_to_115_percent_of_the_roofline_unless_set(gemma, epyc, user, settings):
    roofline = services.roofline_for(services.build_run(cleaned=_cleaned(gemma)))
    del settings.RIGFIT_BENCH_ROOFLINE_MARGIN  # the default margin, 1.15
    inside = services.assess(services.build_run(cleaned=_cleaned(gemma, avg_ts=roofline * 1.14)), trusted=True)
    beyond = services.assess(services.build_run(cleaned=_cleaned(gemma, avg_ts=roofline * 1.16)), trusted=True)
    assert (inside.status, beyond.status) == (Status.ACCEPTED, Status.FLAGGED)


def test_it_reads_the_prompt_margin_from_the_settings(gemma, epyc, user, settings):
    cleaned = _cleaned(gemma, n_prompt=512, n_gen=0, avg_ts=1.0)
    ceiling = services.prefill_ceiling_for(services.build_run(cleaned=cleaned))
    settings.RIGFIT_BENCH_PREFILL_MARGIN = 3.0
    run = services.build_run(cleaned=_cleaned(gemma, n_prompt=512, n_gen=0, avg_ts=ceiling * 2.5))
    assert services.assess(run, trusted=True).status == Status.ACCEPTED  # 2.5 x: past the default 2, within 3


def test_it_compares_a_run_only_with_runs_of_the_same_prompt_length(gemma, epyc, django_user_model):
    # Five submitters' pp512 runs at 500 to 520 t/s; a pp128 run at 200 t/s is another setup, not an outlier of them.
    for i, speed in enumerate((500.0, 505.0, 510.0, 515.0, 520.0)):
        member = django_user_model.objects.create_user(username=f"p{i}", password="s3cret-pass-42")
        make_run(user=member, n_prompt=512, n_gen=0, avg_ts=speed, samples_ts=[], stddev_ts=0)
    short = services.build_run(cleaned=_cleaned(gemma, n_prompt=128, n_gen=0, avg_ts=200.0))
    verdict = services.assess(short, trusted=True)
    assert verdict.status == Status.ACCEPTED and verdict.z_score is None


def test_it_matches_by_vendor_and_name_in_two_queries(epyc, django_assert_num_queries):
    make_hardware(name="Other one", vendor="Intel")
    make_hardware(name="Other two", vendor="Intel")
    # One query for a slug or exact name, one for the list: the vendor comes with the list, not a query per row.
    with django_assert_num_queries(2):
        assert services.match_hardware("AMD Test-EPYC") == epyc


def test_it_numbers_the_llama_bench_tests_from_one_in_their_errors(gemma, epyc, user, settings):
    # Every test of the output names a model the catalog does not have: each is refused with its field's message,
    # numbered as a person counts the tests of the output (Test 1, Test 2, ...), never with an empty message.
    text = read_fixture(_some_fixture())
    count = len(llamabench.parse(text))
    settings.RIGFIT_BENCH_MAX_RUNS_PER_REQUEST = count
    result = services.submit_llama_bench(
        text=text,
        hardware="test-epyc",
        channel=Channel.WEB,
        submitter=user,
        model_slug="no-such-model",
        quant="Q4_K_M",
    )
    assert result.stored == [] and len(result.errors) >= count
    assert {error.split(" (")[0] for error in result.errors} == {f"Test {i}" for i in range(1, count + 1)}
    for error in result.errors:
        assert error.split(": ", 1)[0].endswith("(model_slug)")
        assert error.split(": ", 1)[1] not in ("", "None")


# --- the stored decision and duplicates (sequential: the parallel race runs on PostgreSQL only) -----------------------


def test_it_records_the_automatic_decision_with_its_reason(gemma, epyc):
    run, verdict = services.submit_run(data=run_data(), channel=Channel.API, submitter=None)

    decision = ModerationDecision.objects.get(run=run)
    assert (decision.moderator, decision.from_status, decision.to_status) == (None, "", run.status)
    assert decision.reason == verdict.reason != ""  # the reason a moderator reads is the one the submitter got


def test_it_names_a_duplicate_only_to_its_own_submitter(gemma, epyc, user, django_user_model):
    first, _ = services.submit_run(data=run_data(), channel=Channel.API, submitter=user)
    with pytest.raises(services.Duplicate) as again:
        services.submit_run(data=run_data(), channel=Channel.API, submitter=user)
    assert again.value.run_id == first.pk
    assert str(again.value) == "This run was submitted before."

    someone_else = django_user_model.objects.create_user(username="bob", password="s3cret-pass-43")
    with pytest.raises(services.Duplicate) as theirs:
        services.submit_run(data=run_data(), channel=Channel.API, submitter=someone_else)
    assert theirs.value.run_id is None  # another user's run is not named
    assert BenchmarkRun.objects.count() == 1


# --- a refund the database refuses, the prefill ceiling of an outlier -------------------------------------------------


def _locked_on_refund(execute, sql, params, many, context):
    """The database answering a refund (UPDATE ... count - n) as SQLite does when another writer holds the file."""
    if sql.lstrip().upper().startswith("UPDATE") and '"count" - ' in sql:
        raise OperationalError("database is locked")
    return execute(sql, params, many, context)


# Autocommit, as a request runs (no ATOMIC_REQUESTS): inside the test's own transaction, Django would mark the whole
# transaction for rollback after the failed UPDATE and refuse every later query.
@pytest.mark.django_db(transaction=True)
@override_settings(RIGFIT_BENCH_RATE_STORE="database")
def test_it_drops_a_refund_the_database_refuses_and_still_answers_rate_limited():
    from django.db import connection

    key = services.check_rate(scope="db", key="k", limit=(1, 60), now=0.0)  # 1 of 1 in window 0
    with connection.execute_wrapper(_locked_on_refund):
        services.refund_rate(key, 1)  # best effort: no error for the caller; the count stays 1
        # The next request makes 1 + 1 = 2 > 1: refused, and its own refund fails too. The client still gets a
        # "retry in" (a 429), not the database's error (a 500).
        with pytest.raises(services.RateLimited):
            services.check_rate(scope="db", key="k", limit=(1, 60), now=1.0)
    assert RateCount.objects.get(key=key).count == 2  # neither refund went through: 1 + 1


def test_it_gives_the_prefill_ceiling_with_an_outlier_verdict(gemma, epyc, django_user_model):
    for i, value in enumerate((500.0, 510.0, 490.0, 505.0)):  # four submitters' prompt runs: one vote each
        user = django_user_model.objects.create_user(username=f"p{i}")
        make_run(user=user, n_prompt=512, n_gen=0, avg_ts=value, samples_ts=[], stddev_ts=0)
    slow = services.build_run(cleaned=_cleaned(gemma, n_prompt=512, n_gen=0, avg_ts=50.0))
    verdict = services.assess(slow, trusted=True)
    assert verdict.status == Status.FLAGGED and verdict.reason.startswith("Outlier among 4 submitters' runs")
    # The ceiling: the test EPYC's 0.384 TFLOPS over 2 FLOPs per weight per token, Gemma 3 270M's 268,098,176
    # weights (dense, no vision tower): 0.384e12 / (2 x 268,098,176) = 0.384e12 / 536,196,352 = 716.155... t/s.
    assert verdict.prefill_ceiling_tps == pytest.approx(716.155, abs=0.001)
    assert verdict.roofline_tps is not None and verdict.roofline_tps == pytest.approx(services.roofline_for(slow))


def test_it_compares_a_run_only_with_runs_of_the_same_generation_length(gemma, epyc, user, django_user_model):
    for i, value in enumerate((50.0, 51.0, 49.0, 50.5)):  # four submitters' tg128 runs
        make_run(user=django_user_model.objects.create_user(username=f"g{i}"), avg_ts=value, samples_ts=[])
    shorter = services.build_run(cleaned=_cleaned(gemma, n_gen=64, avg_ts=5.0))
    # tg64 is another test: no group to compare with, so no outlier (against the tg128 runs it would be one).
    verdict = services.assess(shorter, trusted=True)
    assert (verdict.status, verdict.z_score) == (Status.ACCEPTED, None)


# --- the full run of 2026-12-01: refunds, the limits alias, the stores, names, tokens, moderation ---------------------


def test_it_refuses_invalid_input_naming_each_field(gemma, epyc):
    with pytest.raises(services.Invalid) as invalid:
        services.submit_run(data=run_data(avg_ts=None), channel=Channel.API, submitter=None)
    assert str(invalid.value) == "Invalid input."
    assert invalid.value.errors == {"avg_ts": ["This field is required."]}


def test_it_drops_a_refund_of_a_count_that_expired():
    # The window's key is gone (expired, or the cache was flushed): LocMemCache.decr raises ValueError for it.
    services.refund_rate("bench:rate:gone:0123:0", 1)
    assert caches["limits"].get("bench:rate:gone:0123:0") is None


class RefusingCache(BaseCache):
    """A limits store whose server refuses connections: every call raises ConnectionRefusedError (an OSError)."""

    def __init__(self, location, params):
        super().__init__(params)

    def _refuse(self, *args, **kwargs):
        raise ConnectionRefusedError(111, "Connection refused")

    add = get = set = incr = decr = delete = clear = _refuse


_REFUSING = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "refusing-default"},
    "limits": {"BACKEND": f"{__name__}.RefusingCache"},
}


@override_settings(CACHES=_REFUSING)
def test_it_drops_a_refund_the_limits_store_refuses_and_fails_closed_on_a_charge():
    services.refund_rate("bench:rate:r:0123:0", 1)  # best effort: no error for the caller
    with pytest.raises(services.LimiterUnavailable):
        services.check_rate(scope="r", key="k", limit=(5, 60), now=0.0)


def test_it_counts_in_the_limits_cache_where_one_is_set():
    locmem = "django.core.cache.backends.locmem.LocMemCache"
    two = {
        "default": {"BACKEND": locmem, "LOCATION": "two-default"},
        "limits": {"BACKEND": locmem, "LOCATION": "two-limits"},
    }
    with override_settings(CACHES=two):
        for alias in two:
            caches[alias].clear()  # named LocMemCache stores live as long as the process
        try:
            assert services._limits() is caches["limits"]
            key = services.check_rate(scope="l", key="k", limit=(5, 60), now=0.0)
            assert (caches["limits"].get(key), caches["default"].get(key)) == (1, None)
        finally:
            for alias in two:
                caches[alias].clear()


def test_it_keeps_a_count_for_two_windows_and_a_second(monkeypatch):
    import time

    clock = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])  # the cache's own clock (LocMemCache's expiry)
    key = services.check_rate(scope="e", key="k", limit=(5, 60), now=0.0)
    # Read again as the previous window until the next window ends: 2 x 60 + 1 = 121 s after it was counted.
    clock[0] += 120
    assert caches["limits"].get(key) == 1
    clock[0] += 2  # 122 s: expired (not kept for the cache's default 300 s, nor forever)
    assert caches["limits"].get(key) is None


@override_settings(RIGFIT_BENCH_RATE_STORE="database")
def test_it_weighs_the_previous_windows_count_from_the_database():
    for _ in range(3):
        services.check_rate(scope="p", key="k", limit=(3, 60), now=10.0)  # 3 in window 0
    # At 60 s (window 1, elapsed 0) the previous window's 3 weigh 3 x (1 - 0) = 3: one more makes 4 > 3.
    with pytest.raises(services.RateLimited):
        services.check_rate(scope="p", key="k", limit=(3, 60), now=60.0)
    # At 100 s (elapsed 40/60) they weigh 3 x (1/3) = 1: 1 + 1 = 2 <= 3.
    services.check_rate(scope="p", key="k", limit=(3, 60), now=100.0)


def test_it_prefers_the_exact_parameter_count_over_a_close_one():
    make_model(name="Llama", slug="llama-3-1-8b", family="llama")  # 8,030,261,248: 0.4 % above 8e9
    round_8b = make_model(name="Round", slug="round-8b", family="round", n_params=8_000_000_000)
    assert services.recognise_model(_identity("x.gguf", n_params=8_000_000_000)) == round_8b


def test_it_recognises_a_model_by_file_name_in_one_query(gemma, django_assert_num_queries):
    with django_assert_num_queries(1):  # the quant and its model joined
        found = services.recognise_model(_identity("gemma-3-270m-q4_k_m.gguf"))
    assert found == gemma


def test_it_authenticates_a_token_in_two_queries(user, django_assert_num_queries):
    _token, raw = services.token_create(user=user, name="laptop")
    with django_assert_num_queries(2):  # the token with its user, then last_used_at
        assert services.token_authenticate(raw=raw).user == user


def test_it_revokes_a_token_without_undoing_a_rename_made_meanwhile(user):
    from benchmarks.models import ApiToken

    token, _raw = services.token_create(user=user, name="laptop")
    ApiToken.objects.filter(pk=token.pk).update(name="old laptop")  # another request renamed it
    services.token_revoke(token=token)  # this copy still says "laptop"
    token.refresh_from_db()
    assert (token.name, token.revoked_at is not None) == ("old laptop", True)


def test_it_stores_a_pasted_output_as_its_submitters_and_names_their_duplicates(gemma, epyc, user):
    text = read_fixture("gemma3-270m-q4_k_m-cpu.json")
    first = services.submit_llama_bench(text=text, hardware="test-epyc", channel=Channel.WEB, submitter=user)
    assert first.stored and {run.submitter for run, _ in first.stored} == {user}
    again = services.submit_llama_bench(text=text, hardware="test-epyc", channel=Channel.WEB, submitter=user)
    assert again.stored == [] and again.duplicates == [run.pk for run, _ in first.stored]


def test_it_cuts_a_moderators_reason_to_the_stored_300_characters(gemma, epyc, user, staff):
    run = make_run(user=None)
    with pytest.raises(ValueError) as blank:
        services.moderate(run=run, moderator=staff, decision=Status.ACCEPTED, reason="  ")
    assert str(blank.value) == "A reason is required."
    services.moderate(run=run, moderator=staff, decision=Status.ACCEPTED, reason="x" * 301)
    run.refresh_from_db()
    assert run.status_reason == "x" * 300  # BenchmarkRun.status_reason is CharField(max_length=300)


def test_it_makes_the_moderators_group_again_with_its_permission():
    from django.contrib.auth.models import Group

    Group.objects.filter(name=services.MODERATORS_GROUP).delete()
    group = services.moderators_group()
    assert list(group.permissions.values_list("content_type__app_label", "codename")) == [
        ("benchmarks", "moderate_benchmarkrun")
    ]


def test_it_checks_the_prompt_speed_of_a_quant_the_catalog_does_not_list(gemma, epyc):
    run = services.build_run(cleaned=_cleaned(gemma, quant="Q8_0", n_prompt=512, n_gen=0, avg_ts=300.0))
    assert run.quantization is None  # the catalog lists only Q4_K_M of Gemma 3 270M
    # The ceiling counts FLOPs per weight, whatever their storage: 0.384e12 / (2 x 268,098,176) = 716.155... t/s.
    assert services.prefill_ceiling_for(run) == pytest.approx(716.155, abs=0.001)
    anonymous = services.assess(run, trusted=False)  # held for a moderator, who sees the limit it was checked against
    assert anonymous.status == Status.PENDING and anonymous.prefill_ceiling_tps == pytest.approx(716.155, abs=0.001)


def test_it_reads_the_catalog_files_bytes_for_a_quant_without_a_nominal_size(gemma, epyc):
    # A quant whose name gives no bits per weight (Unsloth's "UD-" names), stored with a file size: the size is what a
    # decode step reads, so the roofline is the same as for a Q4_K_M file of the same bytes.
    make_quantization(gemma, name="UD-Q4_K_XL", bits_per_weight=None, file_bytes=253_113_024, file_name="ud.gguf")
    custom = services.build_run(cleaned=_cleaned(gemma, quant="UD-Q4_K_XL"))
    q4_k_m = services.build_run(cleaned=_cleaned(gemma))
    assert custom.quantization is not None and custom.quantization.name == "UD-Q4_K_XL"
    assert services.roofline_for(custom) is not None
    assert services.roofline_for(custom) == pytest.approx(services.roofline_for(q4_k_m), rel=1e-12)


def test_it_gives_an_anonymous_run_its_z_score_for_the_moderator(gemma, epyc, django_user_model):
    for i, value in enumerate((50.0, 51.0, 49.0, 50.5)):  # four submitters' runs of the same setup
        make_run(user=django_user_model.objects.create_user(username=f"z{i}"), avg_ts=value, samples_ts=[])
    verdict = services.assess(services.build_run(cleaned=_cleaned(gemma, avg_ts=51.0)), trusted=False)
    # Group 49, 50, 50.5, 51, 51: median 50.5; deviations 1.5, 0.5, 0, 0.5, 0.5: MAD 0.5;
    # z = 0.6745 x (51 - 50.5) / 0.5 = 0.6745 (the normal distribution's 75th percentile as the scale).
    assert verdict.status == Status.PENDING and verdict.z_score == pytest.approx(0.6745, abs=1e-4)


def test_it_matches_the_quant_of_the_runs_own_model(gemma, epyc):
    # Gemma's Q4_K_M row is older (lower pk); a second model has its own Q4_K_M.
    other = make_model(name="Other", slug="other-270m", family="other", **{"n_params": 268_098_176})
    own = make_quantization(other, name="Q4_K_M", bits_per_weight=None, file_bytes=253_113_024, file_name="o.gguf")
    run = services.build_run(cleaned=_cleaned(other, model_slug="other-270m"))
    assert run.quantization == own


@override_settings(RIGFIT_BENCH_RATE_IP=(1000, 3600), RIGFIT_BENCH_RATE_TOKEN=(2, 3600))
def test_it_counts_each_signed_in_user_apart_in_their_own_windows(user, django_user_model):
    carol = django_user_model.objects.create_user(username="carol", password="s3cret-pass-44")
    services.check_submission_rate(request=_request(user=user), runs=2, now=10.0)  # alice: 2 of 2
    services.check_submission_rate(request=_request(user=carol), runs=2, now=10.0)  # carol: her own 2 of 2
    with pytest.raises(services.RateLimited):
        services.check_submission_rate(request=_request(user=user), runs=1, now=20.0)  # alice: 3 > 2
    # Two hours on (window 2; window 1 held nothing): alice's count starts again, at the time given.
    services.check_submission_rate(request=_request(user=user), runs=2, now=7210.0)


def test_it_limits_a_signed_in_user_to_300_runs_an_hour_where_unset(user, settings):
    del settings.RIGFIT_BENCH_RATE_TOKEN  # docs/operations.md: 300 an hour per signed-in user
    settings.RIGFIT_BENCH_RATE_IP = (1000, 3600)
    services.check_submission_rate(request=_request(user=user), runs=300, now=10.0)
    with pytest.raises(services.RateLimited):
        services.check_submission_rate(request=_request(user=user), runs=1, now=10.0)


def test_it_finds_a_device_by_slug_or_by_name_in_one_query(epyc, django_assert_num_queries):
    # The direct lookup; the fallback reads the whole hardware table (a second query) to compare normalised names.
    for typed in ("test-epyc", "test epyc"):  # the slug; the name "Test EPYC" in another case
        with django_assert_num_queries(1):
            assert services.match_hardware(typed) == epyc
