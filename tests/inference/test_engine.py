from __future__ import annotations

import mmap
import threading
from pathlib import Path

import numpy as np
import pytest

from inference.engine import Busy, DoneEvent, Engine, GenerationParams, Slots, TokenEvent


def test_it_streams_tokens_then_one_done_event_with_metrics(tiny_engine):
    events = list(tiny_engine.stream(GenerationParams(prompt="hello", max_new_tokens=12)))
    tokens, done = events[:-1], events[-1]
    assert isinstance(done, DoneEvent)
    assert all(isinstance(e, TokenEvent) for e in tokens)
    assert [e.index for e in tokens] == list(range(1, 13))
    m = done.metrics
    assert m.prompt_tokens == 5
    assert m.tokens_generated == 12
    assert m.stop_reason == "max_new_tokens"
    assert m.ttft_ms > 0 and m.prompt_tps > 0 and m.decode_tps > 0
    assert m.peak_rss_bytes > 0


def test_it_is_deterministic_when_greedy(tiny_engine):
    first, _ = tiny_engine.generate_text(GenerationParams(prompt="abc", max_new_tokens=8))
    second, _ = tiny_engine.generate_text(GenerationParams(prompt="abc", max_new_tokens=8))
    assert first == second


def test_it_samples_with_a_seed(tiny_engine):
    params = GenerationParams(prompt="abc", max_new_tokens=8, temperature=1.0, top_p=0.9, seed=7)
    assert tiny_engine.generate_text(params)[0] == tiny_engine.generate_text(params)[0]


def test_it_caps_max_new_tokens_at_the_setting(make_tiny_engine):
    engine = make_tiny_engine(max_new_tokens=5)
    _, metrics = engine.generate_text(GenerationParams(prompt="x", max_new_tokens=50))
    assert metrics.tokens_generated == 5


def test_it_refuses_a_prompt_over_the_token_cap(make_tiny_engine):
    engine = make_tiny_engine(max_prompt_tokens=4)
    with pytest.raises(ValueError, match="limit is 4"):
        engine.generate_text(GenerationParams(prompt="longer than four bytes", max_new_tokens=2))


def test_it_stops_at_the_wall_time_cap(make_tiny_engine):
    engine = make_tiny_engine(max_wall_s=0.0, max_new_tokens=50)
    _, metrics = engine.generate_text(GenerationParams(prompt="x", max_new_tokens=50))
    assert metrics.stop_reason == "wall_time"
    assert metrics.tokens_generated == 1


def test_it_stops_when_cancelled(tiny_engine):
    cancel = threading.Event()
    seen = 0
    for event in tiny_engine.stream(GenerationParams(prompt="x", max_new_tokens=60), cancel=cancel):
        if isinstance(event, TokenEvent):
            seen += 1
            if seen == 3:
                cancel.set()
    assert tiny_engine.last_metrics.stop_reason == "cancelled"
    assert tiny_engine.last_metrics.tokens_generated == 3


def test_it_records_a_closed_stream_as_cancelled(tiny_engine):
    stream = tiny_engine.stream(GenerationParams(prompt="x", max_new_tokens=60))
    next(stream)
    next(stream)
    stream.close()
    assert tiny_engine.last_metrics.stop_reason == "cancelled"
    assert tiny_engine.last_metrics.tokens_generated == 2


def test_it_answers_429_when_the_queue_is_full_and_503_when_the_wait_times_out():
    slots = Slots(limit=1, max_queue=1)
    slots.acquire(timeout_s=0)
    with pytest.raises(Busy) as timed_out:
        slots.acquire(timeout_s=0.05)
    assert timed_out.value.status == 503 and timed_out.value.retry_after_s > 0
    slots.enqueue()  # someone else is waiting (a waiter's own registration): the queue of one is full
    with pytest.raises(Busy) as full:
        slots.acquire(timeout_s=1)
    assert full.value.status == 429
    slots.dequeue()
    slots.release()
    slots.acquire(timeout_s=0)
    assert slots.running == 1


def test_it_names_the_output_head_only_once_loaded():
    import dataclasses

    from inference.conf import load_settings

    engine = Engine(dataclasses.replace(load_settings()))
    assert engine.status()["state"] == "idle" and engine.status()["output_head"] == ""


def test_it_reports_status_fields(tiny_engine):
    status = tiny_engine.status()
    assert status["state"] == "ready"
    assert status["max_concurrent"] == 1 and status["running"] == 0
    assert status["rss_bytes"] > 0
    assert status["weights"] == "fp32" and status["output_head"] == "fp32"  # the tiny engine is not quantized


def _nucleus_by_full_sort(probs, top_p):
    order = np.argsort(-probs.astype(np.float64), kind="stable")
    ordered = probs[order].astype(np.float64)
    keep = np.cumsum(ordered) - ordered < top_p
    keep[0] = True
    return order[keep]


@pytest.mark.parametrize("top_p", [0.05, 0.5, 0.9, 0.99, 0.999999])
@pytest.mark.parametrize("spread", [0.5, 3.0, 12.0])  # a flat distribution needs k to grow; a peaked one does not
def test_it_finds_the_same_nucleus_as_sorting_the_whole_vocabulary(top_p, spread):
    from inference.engine import nucleus

    rng = np.random.default_rng(int(spread * 10) + int(top_p * 1000))
    logits = (rng.standard_normal(20_000) * spread).astype(np.float32)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    tokens, kept = nucleus(probs, top_p, first_k=16)
    # the same tokens (equal probabilities may come in another order)
    assert sorted(tokens.tolist()) == sorted(_nucleus_by_full_sort(probs, top_p).tolist())
    assert np.array_equal(kept, probs[tokens])
    mass = kept.astype(np.float64)
    assert float(mass.sum() - mass.min()) < top_p <= float(mass.sum()) + 1e-9


def test_it_samples_only_inside_the_nucleus():
    from inference.engine import sample_next

    logits = np.array([5.0, 4.0, 3.0] + [-5.0] * 1000, dtype=np.float32)
    seen = {sample_next(logits, temperature=1.0, top_p=0.9, generator=np.random.default_rng(s)) for s in range(200)}
    assert seen <= {0, 1, 2} and {0, 1} <= seen
    assert sample_next(logits, temperature=0.0, top_p=0.9) == 0


def test_it_draws_tokens_in_proportion_to_their_probability():
    from inference.engine import _draw

    weights = np.array([0.0, 0.5, 0.0, 0.25, 0.25])
    generator = np.random.default_rng(0)
    counts = np.bincount([_draw(weights, generator) for _ in range(4000)], minlength=5)
    assert counts[0] == counts[2] == 0  # never a zero-probability token
    assert abs(int(counts[1]) - 2000) < 150 and abs(int(counts[3]) - 1000) < 120 and abs(int(counts[4]) - 1000) < 120


def test_it_reports_the_generations_own_peak_memory_not_the_processes_lifetime_peak(tiny_engine):
    def resident_bytes() -> int:
        # VmRSS, not ru_maxrss: another test's reset of the high-water mark (clear_refs) resets ru_maxrss too.
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    # Raise the process's peak by 64 MiB, then give it back: an anonymous mapping, whose munmap returns the pages to
    # the system at once (a freed bytearray may stay with the allocator and keep the resident size up).
    ballast = mmap.mmap(-1, 64 * 1024 * 1024)
    for offset in range(0, len(ballast), 4096):
        ballast[offset] = 1
    peak_with_ballast = resident_bytes()
    ballast.close()
    _, metrics = tiny_engine.generate_text(GenerationParams(prompt="hello", max_new_tokens=4))
    assert 0 < metrics.rss_before_bytes <= metrics.peak_rss_bytes
    assert metrics.peak_rss_bytes < peak_with_ballast - 32 * 1024 * 1024


def test_it_falls_back_to_sampled_rss_where_the_peak_cannot_be_reset(tmp_path):
    import psutil

    from inference.engine import PeakRss

    (tmp_path / "clear_refs").mkdir()  # writing to it fails, as on a read-only /proc
    peak = PeakRss(psutil.Process(), proc_dir=tmp_path)
    assert not peak.reset
    peak.sample()
    assert peak.finish() >= peak.start_bytes > 0


def test_it_records_the_threads_each_generation_used_and_the_load_split(tiny_engine):
    _, metrics = tiny_engine.generate_text(GenerationParams(prompt="hello", max_new_tokens=4))
    assert metrics.threads and all(1 <= t <= tiny_engine.settings.n_threads for t in metrics.threads)
    status = tiny_engine.status()
    assert status["threads"] == metrics.threads[-1]
    assert status["load_read_s"] is None  # handed a loaded model: nothing was read or built


def test_it_loads_a_gguf_and_reports_the_load_split_and_the_generations_own_memory(gguf_engine):
    status = gguf_engine.status()
    assert status["state"] == "ready" and status["model_file"] == "tiny-gemma3-Q4_K_M.gguf"
    assert status["quant"] == "Q4_K_M"
    assert status["weights"] == "as the GGUF stores them: 9 Q4_K, 24 Q5_0, 3 Q6_K, 7 Q8_0"  # write_tiny_gguf's mix
    assert status["output_head"] == (
        "Q8_0, tied to the embedding; screened from a 4-bit copy, rows within 8 nats of the best exact"
    )
    parts = [status[k] for k in ("load_read_s", "load_build_s", "load_warmup_s")]
    assert all(p is not None and p >= 0 for p in parts)
    assert status["load_compile_s"] <= status["load_build_s"]
    assert abs(sum(parts) - status["load_seconds"]) <= 0.02  # the three parts make up the load (to rounding)
    _, metrics = gguf_engine.generate_text(GenerationParams(prompt="the and", max_new_tokens=6))
    assert metrics.prompt_tokens == 3  # <bos> the ▁and (tests/inference/test_gguf_model.py spells it out)
    assert metrics.tokens_generated == 6 and metrics.stop_reason == "max_new_tokens"
    assert metrics.generation_rss_bytes == metrics.peak_rss_bytes - metrics.rss_before_bytes


def test_it_fails_with_a_clear_status_where_the_native_step_cannot_be_built(tiny_gguf, monkeypatch):
    import dataclasses

    from inference import native
    from inference.conf import load_settings

    monkeypatch.setattr(native, "_library", None)
    monkeypatch.setattr(native, "_failed", "")
    monkeypatch.setattr(native, "cpu_flags", lambda cpuinfo=None: {"sse2"})
    engine = Engine(dataclasses.replace(load_settings(), model_path=tiny_gguf))
    with pytest.raises(native.NativeUnavailable):
        engine.load()
    assert engine.status()["state"] == "failed"
    assert engine.status_text() == (
        "The model failed to load: this CPU lacks AVX2, FMA or F16C, which the demo's C++ step needs"
    )


def test_it_chooses_the_decode_threads_after_the_first_token_is_out(tiny_engine, monkeypatch):
    # Sampling /proc/stat for the governor is the decode steps' business: the first token does not wait for it.
    order: list[str] = []
    governor = tiny_engine.governor
    real_start = governor.start
    monkeypatch.setattr(governor, "start", lambda: (order.append("governor"), real_start())[1])
    for event in tiny_engine.stream(GenerationParams(prompt="hello", max_new_tokens=3)):
        order.append(type(event).__name__)
    assert order == ["TokenEvent", "governor", "TokenEvent", "TokenEvent", "DoneEvent"]
    assert order.count("governor") == 1


def test_it_reports_no_decode_threads_for_a_one_token_answer(tiny_engine):
    _, metrics = tiny_engine.generate_text(GenerationParams(prompt="hello", max_new_tokens=1))
    assert metrics.tokens_generated == 1 and metrics.threads == []
