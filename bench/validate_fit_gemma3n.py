"""Gemma 3n E2B against llama.cpp's own allocation report: a sparse GGUF of the real E2B text shape, loaded by llama.cpp
at several contexts; its KV buffers (20 of 30 layers own a cache, the rest reuse it) and compute buffers are written to
tests/fixtures/llamacpp_arch/gemma-3n-e2b.json with their provenance.

The shape: Google's Gemma3n_E2B (https://github.com/google-deepmind/gemma/blob/7691fd4e7f26c9ec5db38110dddb3addfab4d767/
gemma/gm/nn/gemma3n/_gemma3n.py: embed_dim 2048, hidden_dim 8192, 30 layers, 8 heads of 256, 2 KV heads, num_embed
262,144, window 512, 4 local + 1 global, per_layer_input_dim 256); the tensors are the ones llama.cpp's
llama_model_gemma3n::load_arch_tensors creates (src/models/gemma3n.cpp). Same method and probe as
bench/validate_fit_architectures.py. Run:  .venv/bin/python bench/validate_fit_gemma3n.py  (needs llama-cpp-python).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import gguf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from validate_fit import FIXTURES, _mat, _vec
from validate_fit_architectures import ArchSpec, _f32, _header, _shape, _tokenizer, measure

LAYERS, HIDDEN, FF, HEADS, KV, HEAD_DIM, VOCAB, PER_LAYER, ALTUP, LAUREL = 30, 2048, 8192, 8, 2, 256, 262144, 256, 4, 64
KV_LAYERS = 20  # llama.cpp: hparams.n_layer_kv_from_start = 20 for Gemma 3n


def write_gemma3n(w: gguf.GGUFWriter) -> None:
    a, h = "gemma3n", HIDDEN
    _header(w, a, layers=LAYERS, hidden=h, ff=FF, heads=HEADS, kv=KV)
    w.add_uint32(f"{a}.attention.key_length", HEAD_DIM)
    w.add_uint32(f"{a}.attention.value_length", HEAD_DIM)
    w.add_uint32(f"{a}.attention.sliding_window", 512)
    w.add_uint32(f"{a}.embedding_length_per_layer_input", PER_LAYER)
    w.add_float32(f"{a}.final_logit_softcapping", 30.0)
    _tokenizer(w, VOCAB)
    _mat(w, "token_embd.weight", h, VOCAB)  # tied: the output reuses it
    _f32(w, "altup_proj.weight", h, h, ALTUP - 1)
    _f32(w, "altup_unembd_proj.weight", h, h, ALTUP - 1)
    _mat(w, "per_layer_token_embd.weight", PER_LAYER * LAYERS, VOCAB)
    _mat(w, "per_layer_model_proj.weight", h, PER_LAYER * LAYERS)
    _vec(w, "per_layer_proj_norm.weight", PER_LAYER)
    _vec(w, "output_norm.weight", h)
    for il in range(LAYERS):
        p = f"blk.{il}."
        _vec(w, p + "attn_norm.weight", h)
        _mat(w, p + "attn_q.weight", h, HEADS * HEAD_DIM)
        _mat(w, p + "attn_k.weight", h, KV * HEAD_DIM)
        _mat(w, p + "attn_v.weight", h, KV * HEAD_DIM)
        _mat(w, p + "attn_output.weight", HEADS * HEAD_DIM, h)
        _vec(w, p + "attn_q_norm.weight", HEAD_DIM)
        _vec(w, p + "attn_k_norm.weight", HEAD_DIM)
        _vec(w, p + "post_attention_norm.weight", h)
        _vec(w, p + "ffn_norm.weight", h)
        _mat(w, p + "ffn_gate.weight", h, FF)
        _mat(w, p + "ffn_up.weight", h, FF)
        _mat(w, p + "ffn_down.weight", FF, h)
        _vec(w, p + "post_ffw_norm.weight", h)
        _mat(w, p + "inp_gate.weight", h, PER_LAYER)
        _mat(w, p + "proj.weight", PER_LAYER, h)
        _vec(w, p + "post_norm.weight", h)
        _f32(w, p + "altup_correct_coef.weight", ALTUP, ALTUP)
        _vec(w, p + "altup_correct_scale.weight", h)
        _f32(w, p + "altup_predict_coef.weight", ALTUP, ALTUP * ALTUP)
        _f32(w, p + "altup_router.weight", h, ALTUP)
        _vec(w, p + "altup_router_norm.weight", h)
        _f32(w, p + "laurel_l.weight", h, LAUREL)
        _f32(w, p + "laurel_r.weight", LAUREL, h)
        _vec(w, p + "laurel_post_norm.weight", h)


SPEC = ArchSpec(
    "gemma-3n-e2b",
    "gemma3n",
    "Google's Gemma3n_E2B (google-deepmind/gemma gemma/gm/nn/gemma3n/_gemma3n.py at 7691fd4e); tensors as llama.cpp's "
    "src/models/gemma3n.cpp creates them",
    _shape(
        n_layers=LAYERS,
        hidden_size=HIDDEN,
        n_heads=HEADS,
        n_kv_heads=KV,
        head_dim=HEAD_DIM,
        vocab_size=VOCAB,
        intermediate_size=FF,
        tied_embeddings=True,
        sliding_window=512,
        swa_layers=[il for il in range(LAYERS) if (il + 1) % 5],
        kv_heads_per_layer=[KV] * KV_LAYERS + [0] * (LAYERS - KV_LAYERS),
    ),
    write_gemma3n,
)


def main() -> None:
    out = FIXTURES.parent / "llamacpp_arch"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rigfit-gemma3n-") as tmp:
        data = measure(SPEC, Path(tmp))
    data["provenance"]["how"] = "bench/validate_fit_gemma3n.py: sparse GGUF loaded in a subprocess, llama.cpp's report"
    (out / f"{SPEC.name}.json").write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
