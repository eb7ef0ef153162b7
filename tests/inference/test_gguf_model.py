"""The model read straight from a GGUF: the header reader, the tokenizer from its metadata, the native forward pass
against transformers' Gemma 3 on the same weights, and a load path that never imports transformers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.gguf_model import GemmaConfig, GGUFModel, read_gguf
from inference.gguf_tokenizer import GGUFTokenizer

ROOT = Path(__file__).resolve().parents[2]


def test_it_reads_the_same_header_and_tensors_as_the_gguf_package(tiny_gguf):
    from gguf import GGUFReader

    ours = read_gguf(tiny_gguf)
    reader = GGUFReader(str(tiny_gguf))
    assert set(ours.tensors) == {t.name for t in reader.tensors}
    for tensor in reader.tensors:
        info = ours.tensors[tensor.name]
        assert info.type == int(tensor.tensor_type)
        assert info.shape == tuple(int(n) for n in tensor.shape)
        assert np.array_equal(ours.raw(tensor.name).reshape(-1).view(np.uint8), tensor.data.reshape(-1).view(np.uint8))
    assert ours.metadata["tokenizer.ggml.tokens"] == reader.fields["tokenizer.ggml.tokens"].contents()
    assert (
        ours.metadata["gemma3.attention.sliding_window"] == reader.fields["gemma3.attention.sliding_window"].contents()
    )


def test_it_reads_the_gemma3_hyperparameters(tiny_gguf):
    config = GemmaConfig.from_metadata(read_gguf(tiny_gguf).metadata)
    assert (config.layers, config.hidden, config.ffn, config.heads, config.kv_heads, config.head_dim) == (
        6,
        64,
        256,
        2,
        1,
        128,
    )
    assert config.attn_scale == 128**-0.5 and config.embed_scale == np.float32(8.0)
    assert (config.rope_base, config.rope_base_local, config.sliding_window) == (1e6, 1e4, 8)


def test_it_refuses_a_file_that_is_not_gguf(tmp_path):
    from inference.gguf_model import GGUFError

    path = tmp_path / "model.gguf"
    path.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(GGUFError, match="not a GGUF file"):
        read_gguf(path)


def test_it_tokenizes_by_merging_the_highest_scored_pairs(tiny_gguf):
    tokenizer = GGUFTokenizer(read_gguf(tiny_gguf).metadata)
    # 5 specials, 256 bytes, then ▁ t h e a n d th he the ▁the an and ▁and ▁a (ids 261..275, scores 0, -1, ...):
    # "the and" -> t h e ▁ a n d; th (-7) first, then the (-9), an (-11), and (-12), ▁and (-13)
    assert tokenizer.encode("the and") == [2, 270, 274]
    # a character outside the vocabulary falls back to its UTF-8 bytes (é = C3 A9 -> <0xC3> <0xA9> = 5 + 0xC3, ...)
    assert tokenizer.encode("é") == [2, 5 + 0xC3, 5 + 0xA9]
    # control tokens in the text are split off first; decoding leaves them out and restores spaces and bytes
    ids = tokenizer.encode("the<end_of_turn> é")
    assert ids == [2, 270, 4, 261, 5 + 0xC3, 5 + 0xA9]
    assert tokenizer.decode(ids) == "the é"
    assert tokenizer.end_ids == {1, 4}  # <eos> and <end_of_turn>


@pytest.fixture(scope="module")
def reference(tiny_gguf):
    from inference.tiny import reference_model

    return reference_model(tiny_gguf)


PROMPT = [2, 100, 120, 261, 270, 50, 60, 70, 80, 90, 91, 92, 93, 94]  # past the 8-token sliding window


def test_it_computes_the_logits_of_transformers_gemma3_on_the_same_weights(tiny_gguf, native_module, reference):
    model = GGUFModel(read_gguf(tiny_gguf), max_len=64, max_threads=1, native=native_module)
    with torch.inference_mode():
        want = reference(input_ids=torch.tensor([PROMPT])).logits[0]
    got = torch.from_numpy(model.forward(PROMPT, 0, logits=2))
    assert got.shape == want.shape
    assert torch.equal(got.argmax(-1), want.argmax(-1))  # the same greedy token at every position
    # 8-bit activations (Q8_0 / Q8_K, as llama.cpp) through six layers: measured 0.12 on logits spread 0.64
    assert float((got - want).abs().max()) < 0.25 * float(want.std())


def test_it_decodes_greedily_like_transformers(tiny_gguf, native_module, reference):
    from inference.tiny import ReferenceStep

    model = GGUFModel(read_gguf(tiny_gguf), max_len=64, max_threads=1, native=native_module)
    ref = ReferenceStep(reference)

    def greedy(step, n: int = 12) -> list[int]:
        logits = step.forward(PROMPT[:5], 0)
        out = []
        for position in range(5, 5 + n):
            out.append(int(np.argmax(np.asarray(logits))))
            logits = step.forward([out[-1]], position)
        return out

    assert greedy(model) == greedy(ref)


def test_it_gives_the_same_logits_token_by_token_as_for_the_whole_prompt(tiny_gguf, native_module):
    model = GGUFModel(read_gguf(tiny_gguf), max_len=64, max_threads=2, native=native_module)
    model.set_threads(2)
    whole = model.forward(PROMPT, 0, logits=2)
    model.set_threads(1)
    stepped = [model.forward([token], position) for position, token in enumerate(PROMPT)]
    for position, logits in enumerate(stepped):
        # the prompt's batched products and the single token's per-block ones: the same sums in another order
        assert np.allclose(logits, whole[position], rtol=1e-4, atol=1e-4 * float(np.abs(whole).max()))
    model.set_threads(1)
    again = model.forward(PROMPT, 0, logits=2)
    assert np.array_equal(again, whole)  # one thread or two: bit for bit (rows are handed out whole)


def test_the_load_path_imports_neither_transformers_nor_torch(tiny_gguf):
    code = f"""
import dataclasses, sys
from pathlib import Path
import django
django.setup()
from inference.conf import load_settings
from inference.engine import Engine, GenerationParams
engine = Engine(dataclasses.replace(load_settings(), model_path=Path({str(tiny_gguf)!r}))).load()
engine.generate_text(GenerationParams(prompt="the", max_new_tokens=3))
print(sorted(m for m in sys.modules if m.split(".")[0] in ("transformers", "torch", "safetensors", "tokenizers")))
"""
    env = {"DJANGO_SETTINGS_MODULE": "config.settings", "PATH": "/usr/bin:/bin"}
    import os

    env.update({k: v for k, v in os.environ.items() if k.startswith(("HOME", "TORCH", "RIGFIT", "DATABASE"))})
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_it_recomputes_exactly_every_head_row_near_the_best(tiny_gguf, native_module):
    gguf = read_gguf(tiny_gguf)
    plain = GGUFModel(gguf, max_len=64, max_threads=1, native=native_module)
    screened = GGUFModel(gguf, max_len=64, max_threads=1, native=native_module)
    assert plain.head_screened and plain.step.set_screen(0.0, 4096) is False  # margin 0: the whole head exactly
    # the tiny model's logits lie within about one nat of each other: a narrow margin leaves some rows to the copy
    margin = 0.6
    screened.step.set_screen(margin, 4096)
    a, b = plain.forward(PROMPT[:4], 0), screened.forward(PROMPT[:4], 0)
    partial = 0
    for position, token in enumerate(PROMPT[4:], start=4):
        a, b = plain.forward([token], position), screened.forward([token], position)
        assert plain.step.last_rescored() == plain.vocab
        exact = a == b
        assert int(exact.sum()) >= screened.step.last_rescored()  # the recomputed rows: bit for bit
        error = float(np.abs(a - b).max())  # the rest keep their 4-bit scores: a preview (measured up to 0.22 here)
        assert error < 0.3
        # a row whose exact logit is within margin - 2 x error of the best scores within the margin of the best score
        assert bool(exact[a >= a.max() - margin + 2 * error].all())
        assert int(np.argmax(b)) == int(np.argmax(a))
        partial += 0 < screened.step.last_rescored() < screened.vocab
    assert partial >= 5


def test_it_scores_the_last_head_rows_of_a_vocabulary_that_is_not_a_multiple_of_eight(tiny_gguf, native_module):
    # The screening copy scores eight rows at a time; the tiny vocabulary's last group holds 4 rows and 4 of padding
    # (zero scales), whose scores must not spill into the logits.
    gguf = read_gguf(tiny_gguf)
    plain = GGUFModel(gguf, max_len=64, max_threads=1, native=native_module)
    screened = GGUFModel(gguf, max_len=64, max_threads=2, native=native_module)
    screened.set_threads(2)
    assert plain.vocab % 8 != 0
    plain.step.set_screen(0.0, 4096)
    screened.step.set_screen(1e-6, 1)  # recompute only the best row: every other logit is the copy's score
    a, b = plain.forward(PROMPT, 0), screened.forward(PROMPT, 0)
    assert screened.step.last_rescored() == 1
    error = np.abs(a - b)
    assert float(error.max()) < 0.3  # the 4-bit preview (test above: up to 0.22)
    assert float(error[-(plain.vocab % 8) :].max()) < 0.3 and (b[-(plain.vocab % 8) :] != 0).all()
    screened.set_threads(1)
    assert np.array_equal(screened.forward(PROMPT, 0), b)  # one thread or two: the same scores
