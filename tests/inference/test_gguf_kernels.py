"""The C++ kernels on llama.cpp's blocks (inference/native.cpp): dequantization bit for bit against the gguf
package's own, and the quantized products against the dequantized weights."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, quants

from inference.tiny import _random_blocks

TYPES = [GGMLQuantizationType.Q8_0, GGMLQuantizationType.Q5_0, GGMLQuantizationType.Q4_K, GGMLQuantizationType.Q6_K]


def _blocks(qtype: GGMLQuantizationType, rows: int, cols: int, seed: int) -> np.ndarray:
    """Random bytes in every field (scales, mins, codes, high bits), a finite fp16 scale where the format has one."""
    rng = np.random.default_rng(seed)
    block, size = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(rows * cols // block, size), dtype=np.uint8)
    scale = rng.uniform(-0.01, 0.01, size=(len(raw), 1)).astype(np.float16).view(np.uint8)
    if qtype in (GGMLQuantizationType.Q8_0, GGMLQuantizationType.Q5_0):
        raw[:, 0:2] = scale
    elif qtype == GGMLQuantizationType.Q4_K:
        raw[:, 0:2] = scale
        raw[:, 2:4] = rng.uniform(0, 0.01, size=(len(raw), 1)).astype(np.float16).view(np.uint8)
    else:
        raw[:, 208:210] = scale
    return raw.reshape(rows, -1)


@pytest.mark.parametrize("qtype", TYPES, ids=lambda t: t.name)
def test_it_dequantizes_every_block_type_bit_for_bit_like_the_gguf_package(native_module, qtype):
    cols = 512
    raw = _blocks(qtype, 24, cols, seed=int(qtype))
    want = quants.dequantize(raw, qtype)
    got = native_module.dequantize(raw, int(qtype), cols)
    assert got.shape == want.shape == (24, cols)
    assert np.array_equal(got.view(np.uint32), want.astype(np.float32).view(np.uint32))


@pytest.mark.parametrize("qtype", TYPES, ids=lambda t: t.name)
@pytest.mark.parametrize("tokens", [1, 3, 10])  # from 4 rows on, the batched path (each weight row unpacked once)
def test_it_multiplies_the_blocks_like_the_dequantized_weights(native_module, qtype, tokens):
    rows, cols = 40, 512
    raw = _random_blocks(qtype, rows, cols, np.random.default_rng(7))
    weight = quants.dequantize(raw, qtype).astype(np.float32)
    x = np.random.default_rng(1).standard_normal((tokens, cols)).astype(np.float32)
    got = native_module.matmul(raw, int(qtype), x, threads=1)
    # Against the activation as the kernel quantizes it (Q8_K for the k-quants, Q8_0 for the rest): only float
    # rounding apart (sums of 512 products in another order).
    k_quant = qtype in (GGMLQuantizationType.Q4_K, GGMLQuantizationType.Q6_K)
    xq = np.stack([native_module.quantized_activation(row, k_quant) for row in x])
    exact = xq.astype(np.float64) @ weight.astype(np.float64).T
    assert np.allclose(got, exact, rtol=1e-5, atol=1e-5 * float(np.abs(exact).max()))
    # Against the unquantized activation: the 8-bit activations' cost, at most 1.03 % of the largest output here
    # (Q4_K's random blocks share one sign of offset, so the rounding errors add up along the row)
    plain = x @ weight.T
    assert float(np.abs(got - plain).max()) < 0.02 * float(np.abs(plain).max())


def test_it_quantizes_activations_as_llama_cpp_does(native_module):
    x = np.array([0.0] * 31 + [1.27] + [-2.54] + [0.5] * 31, dtype=np.float32)
    q8_0 = native_module.quantized_activation(x, False)
    # block 1: max |x| 1.27, d = 0.01 (fp16 0.01000213623046875), codes round(x / d)
    d = float(np.float16(1.27 / 127))
    assert q8_0[31] == pytest.approx(127 * d) and q8_0[0] == 0
    # Q8_K: one block of 256, scale from the signed extreme (-2.54): d = -2.54 / -127 exactly 0.02
    x256 = np.concatenate([x, np.zeros(192, dtype=np.float32)])
    q8_k = native_module.quantized_activation(x256, True)
    assert q8_k[32] == pytest.approx(-2.54) and q8_k[31] == pytest.approx(64 * 0.02)  # 1.27 / 0.02 = 63.5 -> 64


@pytest.mark.parametrize("qtype", TYPES, ids=lambda t: t.name)
def test_it_gives_each_row_the_same_result_alone_or_in_a_batch_and_on_any_thread_count(native_module, qtype):
    raw = _random_blocks(qtype, 300, 256, np.random.default_rng(3))
    x = np.random.default_rng(4).standard_normal((10, 256)).astype(np.float32)
    batch = native_module.matmul(raw, int(qtype), x, threads=1)
    assert np.array_equal(native_module.matmul(raw, int(qtype), x, threads=2), batch)  # rows split: bit for bit
    for t in range(10):  # alone: the per-block kernel, the same products summed in another order
        alone = native_module.matmul(raw, int(qtype), x[t : t + 1], threads=2)[0]
        assert np.allclose(alone, batch[t], rtol=1e-5, atol=1e-5 * float(np.abs(batch).max()))


@pytest.mark.parametrize("qtype", TYPES, ids=lambda t: t.name)
def test_it_gives_a_prompts_row_the_same_bits_whatever_tokens_share_its_pass(native_module, qtype):
    # The batched path takes tokens four at a time and the rest (1 to 3) in one pass of their own, each token with
    # its own chain of sums in the same order: 4 to 11 tokens give every token's row the bits of a 12-token batch.
    raw = _random_blocks(qtype, 40, 512, np.random.default_rng(5))
    x = np.random.default_rng(6).standard_normal((12, 512)).astype(np.float32)
    whole = native_module.matmul(raw, int(qtype), x, threads=1)
    for tokens in range(4, 12):
        got = native_module.matmul(raw, int(qtype), x[:tokens], threads=2)
        assert np.array_equal(got, whole[:tokens]), tokens


def test_its_softmax_follows_numpy_in_float64(native_module):
    # Attention's weights: llama.cpp's vectorised exp (at most 1.45 + 0.5 ulp from expf) in lanes of 8 plus a
    # scalar tail (13 = 8 + 5), scores from -100 to 80 (past exp's float range before the max is taken off).
    rng = np.random.default_rng(5)
    for n in (1, 13, 500):
        x = rng.uniform(-100, 80, size=n).astype(np.float32)
        want = np.exp(x.astype(np.float64) - x.max())
        want /= want.sum()
        got = native_module.softmax(x)
        assert np.allclose(got, want, rtol=2e-6, atol=1e-12)
        assert got.sum() == pytest.approx(1.0, abs=1e-5)
    # exp of the max is 1 exactly; a score 104 nats below the max flushes to 0 (beneath -103.97)
    got = native_module.softmax(np.array([0.0, -104.0] + [-1.0] * 7, dtype=np.float32))
    assert got[1] == 0.0 and got[0] == pytest.approx(1 / (1 + 7 * np.exp(-1.0)), rel=1e-6)
