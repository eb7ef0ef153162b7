"""The element-wise kernels of the native step (inference/native.cpp): the feed-forward's GELU and the 8-bit
quantization of activations, against formulas computed here in numpy (float64 where the kernel is float32)."""

from __future__ import annotations

import numpy as np


def _gelu64(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gemma's gelu_pytorch_tanh, 0.5 x (1 + tanh(y)) with y = sqrt(2 / pi) (x + 0.044715 x^3), in float64, and 2 y.
    Written x / (1 + exp(-2 y)) (the same function), since 1 + tanh(y) loses every digit in float64 too below x = -7."""
    x = x.astype(np.float64)
    y = np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)
    with np.errstate(over="ignore"):
        return x / (1.0 + np.exp(-2.0 * y)), 2.0 * y


def test_it_computes_gelu_within_a_few_float32_ulps_of_the_float64_formula(native_module):
    x = np.concatenate(
        [np.linspace(-12, 12, 40_001), np.random.default_rng(0).standard_normal(4_003) * 3, [0.0, -0.0, 1e-30]]
    ).astype(np.float32)
    got = native_module.gelu(x).astype(np.float64)
    want, arg = _gelu64(x)
    # 1 ulp of float32 is 2^-23 = 1.2e-7 relative: the vectorised exp is good to 2 ulp and the division adds half;
    # the float32 argument -2y carries its own half ulp, which exp multiplies by |2y| (66 at x = -9)
    assert np.all(np.abs(got - want) <= 3e-7 * (1 + np.abs(arg)) * np.abs(want) + 1e-30)
    # by hand: y = 0.7978845608 * (1 + 0.044715) = 0.8335565, tanh(y) = 0.6823840, 0.5 * (1 + 0.6823840) = 0.8411920
    one = native_module.gelu(np.array([1.0, -1.0, 0.0], dtype=np.float32))
    assert abs(one[0] - 0.8411920) < 1e-6 and abs(one[1] - (-1 + 0.8411920)) < 1e-6 and one[2] == 0


def test_it_keeps_gelus_limits_far_out(native_module):
    x = np.array([-200.0, -60.0, -11.0, 11.0, 60.0, 200.0, 3e38], dtype=np.float32)
    got = native_module.gelu(x)
    assert np.all(np.isfinite(got))
    assert np.array_equal(got[3:], x[3:])  # tanh(y) is 1 in float32 from x = 4.5 on: gelu(x) = x
    assert np.all(got[:3] <= 0) and np.all(got[:3] > -1e-20)  # 0.5 x (1 + tanh) tends to 0 from below
    # the 3 tail values after the last whole vector take the same path as the vector ones
    tail = np.random.default_rng(1).standard_normal(11).astype(np.float32)
    assert np.array_equal(native_module.gelu(tail)[8:], native_module.gelu(tail[8:].copy()))


def test_it_rounds_q8_0_halves_away_from_zero_and_q8_k_halves_to_even(native_module):
    # The largest magnitude 127 makes both scales exactly 1, so the codes are the values rounded:
    # Q8_0 (quantize_row_q8_0_ref: roundf) sends 2.5 to 3 and -2.5 to -3; Q8_K (quantize_row_q8_K_ref: nearbyint, and
    # the scale from the signed extreme, here +127, so d = 127 / -127 = -1 and codes = -x) sends 2.5 to 2 and 3.5 to 4.
    x = np.zeros(256, dtype=np.float32)
    x[:6] = [127.0, 2.5, -2.5, 3.5, 0.49, -0.5]
    q8_0 = native_module.quantized_activation(x, False)
    assert list(q8_0[:6]) == [127, 3, -3, 4, 0, -1]
    q8_k = native_module.quantized_activation(x, True)
    assert list(q8_k[:6]) == [127, 2, -2, 4, 0, 0]
    # the first value of the largest magnitude sets Q8_K's sign: -127 before +127 gives d = 1 and codes = x
    x[0], x[7] = -127.0, 127.0
    q8_k = native_module.quantized_activation(x, True)
    assert list(q8_k[:8]) == [-127, 2, -2, 4, 0, 0, 0, 127]


def test_it_quantizes_every_q8_0_block_like_the_reference_formula(native_module):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(4096) * np.repeat(rng.uniform(0.001, 50, 128), 32)).astype(np.float32)
    x[:32] = 0.0  # an all-zero block: scale 0, codes 0
    got = native_module.quantized_activation(x, False)
    blocks = x.reshape(-1, 32)
    d = (np.abs(blocks).max(axis=1) / np.float32(127)).astype(np.float32)
    inv = np.where(d != 0, np.float32(1) / np.where(d != 0, d, 1), 0).astype(np.float32)
    v = (blocks * inv[:, None]).astype(np.float32)
    codes = np.sign(v) * np.floor(np.abs(v.astype(np.float64)) + 0.5)  # roundf
    want = (codes * d.astype(np.float16).astype(np.float32)[:, None]).astype(np.float32).reshape(-1)
    assert np.array_equal(got, want)
