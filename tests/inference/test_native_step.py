"""The native step's synchronisation points (inference/native.cpp): each job handed to the thread pool is one wait
for every thread taking part, and a thread another process has pushed off its core delays the step at each."""

from __future__ import annotations

import numpy as np

from inference.gguf_model import GGUFModel, read_gguf
from inference.tiny import TINY


def test_it_waits_once_per_layer_in_a_decode_step_plus_once_for_the_head(tiny_gguf, native_module):
    model = GGUFModel(read_gguf(tiny_gguf), max_len=200, max_threads=2, native=native_module)
    model.set_threads(2)
    assert model.head_screened  # the tiny Q8_0 head: scored from its 4-bit copy, one job over the vocabulary
    model.forward(list(range(10, 20)), 0)
    # Per layer one job: every thread computes the attention half itself, then the threads share the feed-forward
    # (each unit 256 gate/up rows, GELU and their share of W_down). Then the head: 6 layers + 1 = 7. (Before: the
    # attention half split over heads and the feed-forward, 2 per layer: 13; earlier 3 per layer: 19, and 4: 25.)
    model.forward([20], 10)
    assert model.step.last_jobs() == TINY["layers"] + 1
    # A long prompt's attention is split over the pool (one unit per token); a decode step's stays in each thread.
    model.forward(list(range(30, 170)), 11, logits=0)
    model.forward([5], 151)
    assert model.step.last_jobs() == TINY["layers"] + 1


PROMPT = [2, 40, 41, 42, 43]


def one_and_two_threads(tiny_gguf, native_module, max_len: int) -> tuple[GGUFModel, GGUFModel]:
    """The tiny model on one thread and on two, each after the same prompt."""
    gguf = read_gguf(tiny_gguf)
    one = GGUFModel(gguf, max_len=max_len, max_threads=1, native=native_module)
    two = GGUFModel(gguf, max_len=max_len, max_threads=2, native=native_module)
    two.set_threads(2)
    one.forward(PROMPT, 0, logits=0)
    two.forward(PROMPT, 0, logits=0)
    return one, two


def test_the_same_decode_step_gives_the_same_logits_on_one_thread_or_two(tiny_gguf, native_module):
    one, two = one_and_two_threads(tiny_gguf, native_module, 64)
    for position, token in enumerate([50, 51, 52], start=len(PROMPT)):
        # the units' shares are added in unit order whichever thread computed them: bit for bit
        assert (one.forward([token], position) == two.forward([token], position)).all()


def test_a_prompts_attention_four_query_heads_at_a_time_follows_the_per_head_decode(
    tmp_path, monkeypatch, native_module
):
    # Four query heads per key/value head (Gemma 3 270M's grouping): the prompt's attention takes the four together
    # (attend4), a decode step one head at a time (attend_head). The same sums per head, so the logits differ only
    # by the prompt's batched products against the single token's per-block ones (the tolerance of the 2-head check
    # in test_gguf_model).
    from inference import tiny

    monkeypatch.setitem(tiny.TINY, "heads", 4)
    # Seed 2: every 8-bit activation code comes out the same on both paths (with seeds 0 and 1 a few codes flip on
    # a rounding tie-break of the float sums, and the random model carries a flip to the logits by up to 4 %).
    path = tiny.write_tiny_gguf(tmp_path / "tiny-4-heads.gguf", seed=2)
    model = GGUFModel(read_gguf(path), max_len=64, max_threads=2, native=native_module)
    model.set_threads(2)
    model.step.set_screen(0, 1)  # the whole head exactly at every step (else rows far below the best are estimates)
    prompt = [2, *range(40, 59)]
    whole = model.forward(prompt, 0, logits=2)
    stepped = [model.forward([token], position) for position, token in enumerate(prompt)]
    scale = float(np.abs(whole).max())
    for position, logits in enumerate(stepped):
        assert np.allclose(logits, whole[position], rtol=1e-4, atol=1e-4 * scale)


def test_it_gives_the_same_logits_on_two_threads_when_a_busy_process_delays_the_helper(tiny_gguf, native_module):
    # Another process spinning on the cores pushes the helper off its core at random points of the step: it then
    # joins a layer late (or a later one, or none), having computed the attention half from that layer's input. The
    # caller never waits for a helper that claimed nothing, and a late helper claims nothing of a finished layer, so
    # the logits stay those of one thread, bit for bit, step after step.
    import multiprocessing

    one, two = one_and_two_threads(tiny_gguf, native_module, 160)
    stop = multiprocessing.Event()
    spinners = [multiprocessing.Process(target=_spin, args=(stop,), daemon=True) for _ in range(2)]
    for spinner in spinners:
        spinner.start()
    try:
        for position in range(len(PROMPT), 150):
            token = 50 + position % 90
            assert (one.forward([token], position) == two.forward([token], position)).all(), position
    finally:
        stop.set()
        for spinner in spinners:
            spinner.join(5)


def _spin(stop) -> None:
    while not stop.is_set():
        pass


def test_it_waits_eight_times_per_layer_in_a_short_prompt_and_nine_in_a_long_one(tiny_gguf, native_module):
    # A prompt's layer: the four products (q/k/v, W_o, gate/up, W_down) and between them one per-token job each that
    # also quantizes its token's row for the next product (norms and residual, rope + attention, GELU); a long
    # prompt's keys get a job of their own (16 tokens on), a short one's are roped on the caller. Plus the embedding
    # and the head: 6 x 8 + 2 = 50 and 6 x 9 + 2 = 56 (13 per layer before: 80 and 80).
    model = GGUFModel(read_gguf(tiny_gguf), max_len=200, max_threads=2, native=native_module)
    model.set_threads(2)
    model.forward(list(range(10, 16)), 0)
    assert model.step.last_jobs() == TINY["layers"] * 8 + 2
    model.forward(list(range(10, 30)), 6)
    assert model.step.last_jobs() == TINY["layers"] * 9 + 2
    model.set_threads(1)  # counted alike on one thread (each job then runs on the caller)
    model.forward(list(range(10, 16)), 0)
    assert model.step.last_jobs() == TINY["layers"] * 8 + 2


def test_a_prompt_gives_the_same_logits_on_one_thread_or_two_at_every_length(tiny_gguf, native_module):
    # Short prompts (keys roped on the caller, per-token work below 4 tokens on the caller too) and long ones, each
    # after an earlier chunk in the cache: every row is computed whole by one thread, so the split does not matter.
    gguf = read_gguf(tiny_gguf)
    one = GGUFModel(gguf, max_len=128, max_threads=1, native=native_module)
    two = GGUFModel(gguf, max_len=128, max_threads=2, native=native_module)
    two.set_threads(2)
    for length in (2, 3, 4, 6, 15, 16, 40):
        prompt = [2, *range(40, 40 + length - 1)]
        for model in (one, two):
            model.forward([2, 7, 8], 0, logits=0)
        a = one.forward(prompt, 3, logits=2)
        b = two.forward(prompt, 3, logits=2)
        assert np.array_equal(a, b), length


def test_it_keeps_each_models_rope_angles_apart_when_one_thread_steps_two_models(tmp_path, monkeypatch, native_module):
    # A decode step's thread keeps the rope's angles of the last position it computed; two models whose rope bases
    # differ, stepped in turn at the same positions on one thread, must each get their own.
    from inference import tiny

    paths = {}
    for base in (1_000_000.0, 100_000.0):
        monkeypatch.setitem(tiny.TINY, "rope_base", base)
        paths[base] = tiny.write_tiny_gguf(tmp_path / f"tiny-{int(base)}.gguf")

    def model(base: float) -> GGUFModel:
        made = GGUFModel(read_gguf(paths[base]), max_len=64, max_threads=1, native=native_module)
        made.forward(PROMPT, 0, logits=0)
        return made

    tokens = list(enumerate([50, 51, 52, 53], start=len(PROMPT)))
    alone = {}
    for base in paths:
        solo = model(base)
        alone[base] = [solo.forward([token], position) for position, token in tokens]
    both = {base: model(base) for base in paths}
    for step, (position, token) in enumerate(tokens):
        for base, each in both.items():
            assert (each.forward([token], position) == alone[base][step]).all()
    assert not np.array_equal(alone[1_000_000.0][-1], alone[100_000.0][-1])  # the bases do change the logits
