"""The C++ decode step's output-head screening (inference/native.cpp, kernels.quantize_q4_screen)."""

from __future__ import annotations

import pytest
import torch

from inference.kernels import dequantize_q4_screen, quantize_q4_screen, quantize_rows


def _int8_table(rows: int, cols: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    # rows of different magnitudes, with a few outliers, as in a real embedding table
    weight = torch.randn(rows, cols, generator=generator) * torch.rand(rows, 1, generator=generator)
    weight[:, 7] *= 6.0
    return quantize_rows(weight)


def test_it_keeps_each_4bit_value_within_a_step_of_the_int8_one():
    q, s = _int8_table(200, 128)
    codes, scales = quantize_q4_screen(q, s, chunk_rows=64)  # several chunks, the last one short
    assert codes.shape == (200, 64) and codes.dtype == torch.uint8
    assert scales.shape == (200, 4) and scales.dtype == torch.float16
    original = q.float() * s[:, None]
    restored = dequantize_q4_screen(codes, scales)
    step = scales.float().abs().repeat_interleave(32, dim=1)
    error = (restored - original).abs()
    # half a step, except that the grid is -8..7 steps (ggml's Q4_0): values near +8 steps clamp to +7
    assert bool((error <= 1.01 * step + 1e-7).all())  # (+ the fp16 rounding of the step)
    assert float(error.mean()) < float(step.mean()) / 4
    # the block's largest magnitude is the grid's end (code 0 = -8 steps), so it comes back up to fp16 rounding
    blocks = original.reshape(200, 4, 32)
    extreme = blocks.gather(-1, blocks.abs().argmax(-1, keepdim=True)).squeeze(-1)
    back = restored.reshape(200, 4, 32).gather(-1, blocks.abs().argmax(-1, keepdim=True)).squeeze(-1)
    assert torch.allclose(back, extreme, rtol=1e-3, atol=1e-6)


def test_it_refuses_a_row_length_the_screening_kernel_cannot_take():
    q, s = _int8_table(4, 96)
    with pytest.raises(ValueError, match="divisible by 64"):
        quantize_q4_screen(q, s)


@pytest.fixture(scope="module")
def native_module():
    from inference import native

    module = native.load()
    if module is None:
        pytest.skip(f"the C++ step cannot be built here: {native.failure()}")
    return module


@pytest.fixture
def screened_tiny_model(monkeypatch):
    """A tiny random int8 Gemma 3 with the head's 4-bit copy, under a narrow screening margin: its logits lie within
    a few tenths of each other, and the real 8-nat margin would recompute every row."""
    from inference import fastpath
    from inference.kernels import quantize_model
    from inference.tiny import make_tiny_causal_lm

    model = quantize_model(make_tiny_causal_lm(259, seed=3))
    embed = model.model.embed_tokens
    model.rigfit_head_screen = quantize_q4_screen(embed.weight, embed.scale)
    monkeypatch.setattr(fastpath, "SCREEN_MARGIN", 0.05)
    return model


def _blocks8(x: torch.Tensor) -> torch.Tensor:
    """The activation as the kernel sees it: int8 per block of 32, scale max|x| / 127 (round half to even)."""
    blocks = x.reshape(-1, 32)
    d = blocks.abs().amax(-1, keepdim=True) / 127.0
    inverse = torch.where(d > 0, 1.0 / d, torch.zeros_like(d))
    return (torch.round(blocks * inverse) * d).reshape(-1)


@pytest.mark.slow
@pytest.mark.xdist_group("inference-real-model")  # one worker builds the extension
def test_it_scores_rows_from_the_4bit_copy_like_the_dequantized_reference(native_module):
    q, s = _int8_table(300, 640, seed=1)
    codes, scales = quantize_q4_screen(q, s)
    x = torch.randn(640, generator=torch.Generator().manual_seed(2))
    got = native_module.q4_matvec(x, codes, scales)
    want = dequantize_q4_screen(codes, scales) @ _blocks8(x)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-4)
    exact = (q.float() * s[:, None]) @ x
    assert float((got - exact).abs().max()) < 0.1 * float(exact.abs().max())  # a preview, not noise


@pytest.mark.slow
@pytest.mark.xdist_group("inference-real-model")
def test_it_recomputes_every_head_row_near_the_best_from_the_int8_weights(native_module, screened_tiny_model):
    from inference.fastpath import GemmaFastDecoder

    model = screened_tiny_model
    plain = GemmaFastDecoder(model, max_len=64, native=native_module, head_screen=False)
    screened = GemmaFastDecoder(model, max_len=64, native=native_module, head_screen=True)
    assert plain.rescored_rows is not None
    partial = 0
    with torch.inference_mode():
        a, b = plain.prefill(torch.tensor([[1, 40, 41]])), screened.prefill(torch.tensor([[1, 40, 41]]))
        for token in (50, 60, 70, 80, 90, 100, 110, 120):
            a, b = plain.decode(token), screened.decode(token)
            assert plain.rescored_rows == 259
            # the int8 rows, same arithmetic: bit for bit (the all-zero padding row scores 0 either way)
            recomputed = int(((a == b) & (a != 0)).sum())
            assert recomputed == screened.rescored_rows
            assert int(torch.argmax(b)) == int(torch.argmax(a))
            partial += 0 < recomputed < 259
            assert float((a - b).abs().max()) < 0.1  # the rest: their 4-bit scores, close to the int8 ones
    assert partial >= 4


def test_it_unmaps_a_sparsely_read_table_without_losing_its_values(tmp_path):
    from safetensors.torch import load_file, save_file

    from inference.kernels import mark_sparsely_read, release_free_memory

    table = torch.randint(-127, 128, (4096, 640), dtype=torch.int8)
    path = tmp_path / "table.safetensors"
    save_file({"table": table}, str(path))
    mapped = load_file(str(path))["table"]
    assert mark_sparsely_read(mapped, path)
    release_free_memory()  # MADV_DONTNEED on the file's pages: the next read maps them again
    assert torch.equal(mapped, table)
    assert not mark_sparsely_read(table.clone(), path)  # anonymous memory: dropping it would zero the weights


def test_it_removes_the_lite_files_of_earlier_versions_only(tmp_path):
    from inference import lite

    current = lite.lite_path(tmp_path)
    older = tmp_path / "rigfit-native-v1.safetensors"
    for path in (current, older, tmp_path / "model.safetensors"):
        path.write_bytes(b"x")
    assert lite.remove_older_versions(tmp_path) == [older]
    assert current.exists() and not older.exists() and (tmp_path / "model.safetensors").exists()


@pytest.mark.slow
@pytest.mark.xdist_group("inference-real-model")
def test_it_widens_the_screening_margin_for_hot_sampling(native_module, screened_tiny_model):
    from inference.fastpath import GemmaFastDecoder

    model = screened_tiny_model
    decoder = GemmaFastDecoder(model, max_len=64, native=native_module)

    def rescored_per_step(temperature: float) -> list[int]:
        decoder.use_temperature(temperature)
        decoder.prefill(torch.tensor([[1, 40, 41]]))
        rows = []
        for token in (50, 60, 70, 80):
            decoder.decode(token)
            rows.append(decoder.rescored_rows)
        return rows

    with torch.inference_mode():
        greedy, cool, hot, greedy_again = (rescored_per_step(t) for t in (0.0, 0.7, 4.0, 0.0))
    assert cool == greedy == greedy_again  # up to 1 the margin stays; a later greedy run is back to it
    assert all(h >= g for h, g in zip(hot, greedy, strict=True)) and sum(hot) > sum(greedy)


@pytest.mark.slow
@pytest.mark.xdist_group("inference-real-model")
def test_it_prefills_a_short_prompt_on_the_native_step_like_the_eager_path(native_module, monkeypatch):
    from inference import fastpath
    from inference.fastpath import GemmaFastDecoder
    from inference.kernels import quantize_model
    from inference.tiny import make_tiny_causal_lm

    model = quantize_model(make_tiny_causal_lm(259, seed=4))
    stepped = GemmaFastDecoder(model, max_len=64, native=native_module, head_screen=False)
    eager = GemmaFastDecoder(model, max_len=64, native=native_module, head_screen=False)
    prompt = torch.tensor([[1, 72, 101, 108, 108, 111, 32, 119]])
    with torch.inference_mode():
        monkeypatch.setattr(fastpath, "NATIVE_PREFILL_MAX_TOKENS", 8)
        a = stepped.prefill(prompt)
        monkeypatch.setattr(fastpath, "NATIVE_PREFILL_MAX_TOKENS", 0)
        b = eager.prefill(prompt)
        assert stepped.position == eager.position == 8
        for token in (int(torch.argmax(b)), 50, 60):
            # int16-rounded activations on the native step, fp32 on the eager one: a few thousandths apart
            assert torch.allclose(a, b, atol=0.02, rtol=0.02)
            assert int(torch.argmax(a)) == int(torch.argmax(b))
            a, b = stepped.decode(token), eager.decode(token)


@pytest.mark.slow
@pytest.mark.xdist_group("inference-real-model")
def test_it_computes_the_same_logits_on_any_thread_count_of_its_pool(native_module):
    from inference.fastpath import GemmaFastDecoder
    from inference.kernels import quantize_model
    from inference.tiny import make_tiny_causal_lm

    model = quantize_model(make_tiny_causal_lm(259, seed=5))
    decoder = GemmaFastDecoder(model, max_len=300, native=native_module, head_screen=False, max_threads=3)
    assert decoder._native.max_threads() == 3

    def run(threads: int) -> list[torch.Tensor]:
        decoder.set_threads(threads)
        assert decoder.threads == threads
        out = [decoder.prefill(torch.tensor([[1, 40, 41]]))]
        # past 128 positions the attention heads are split over the pool too
        out += [decoder.decode(token) for token in range(50, 250)]
        return out

    with torch.inference_mode():
        one, two, three, one_again = run(1), run(2), run(3), run(1)
    assert decoder._native.helpers_cpu_seconds() > 0  # the helpers ran (the governor subtracts their time)
    for logits in (two, three, one_again):  # rows are handed out in chunks, each computed the same way: bit for bit
        assert all(torch.equal(a, b) for a, b in zip(one, logits, strict=True))
    decoder.set_threads(99)  # clamped to the pool
    assert decoder.threads == 3
