"""Gemma 3n E2B and Nemotron-H 8B against llama.cpp's own allocation report: sparse GGUFs of their real shapes, loaded
by llama.cpp at several contexts; KV buffers (Gemma 3n: 20 of 30 layers own a cache, the rest reuse it; Nemotron-H: 4
attention layers among 24 Mamba-2 and 24 MLP-only ones), recurrent state and compute buffers are written to
tests/fixtures/llamacpp_arch/<name>.json with their provenance.

Nemotron-H 8B: the config.json copied in NVIDIA-NeMo/Megatron-Bridge tests/unit_tests/models/nemotronh/
test_nemotron_h_bridge.py (nemotronh_8b_config_dict, commit 03c781b8662d87b0522d402f2bcbb30bc928f9c9); tensors as
llama.cpp's llama_model_nemotron_h::load_arch_tensors creates them (src/models/nemotron-h.cpp).

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


NEMOTRON_H_PATTERN = "M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M-"
NH_HIDDEN, NH_FF, NH_HEADS, NH_KV, NH_VOCAB = 4096, 21504, 32, 8, 131072
NH_D_CONV, NH_SSM_HEADS, NH_SSM_HEAD_DIM, NH_GROUPS, NH_STATE = 4, 128, 64, 8, 128


def write_nemotron_h(w: gguf.GGUFWriter) -> None:
    a, h, layers = "nemotron_h", NH_HIDDEN, len(NEMOTRON_H_PATTERN)
    d_inner = NH_SSM_HEADS * NH_SSM_HEAD_DIM
    hd = h // NH_HEADS
    kv = [NH_KV if kind == "*" else 0 for kind in NEMOTRON_H_PATTERN]
    ff = [NH_FF if kind == "-" else 0 for kind in NEMOTRON_H_PATTERN]
    w.add_uint32(f"{a}.block_count", layers)
    w.add_uint32(f"{a}.context_length", 8192)
    w.add_uint32(f"{a}.embedding_length", h)
    w.add_array(f"{a}.feed_forward_length", ff)
    w.add_uint32(f"{a}.attention.head_count", NH_HEADS)
    w.add_array(f"{a}.attention.head_count_kv", kv)
    w.add_uint32(f"{a}.attention.key_length", hd)
    w.add_uint32(f"{a}.attention.value_length", hd)
    w.add_float32(f"{a}.attention.layer_norm_epsilon", 1e-5)
    w.add_float32(f"{a}.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_float32(f"{a}.rope.freq_base", 10000.0)
    w.add_uint32(f"{a}.ssm.conv_kernel", NH_D_CONV)
    w.add_uint32(f"{a}.ssm.inner_size", d_inner)
    w.add_uint32(f"{a}.ssm.state_size", NH_STATE)
    w.add_uint32(f"{a}.ssm.time_step_rank", NH_SSM_HEADS)
    w.add_uint32(f"{a}.ssm.group_count", NH_GROUPS)
    _tokenizer(w, NH_VOCAB)
    _mat(w, "token_embd.weight", h, NH_VOCAB)
    _vec(w, "output_norm.weight", h)
    _mat(w, "output.weight", h, NH_VOCAB)
    d_in_proj = 2 * d_inner + 2 * NH_GROUPS * NH_STATE + NH_SSM_HEADS
    conv_dim = d_inner + 2 * NH_GROUPS * NH_STATE
    for il, kind in enumerate(NEMOTRON_H_PATTERN):
        p = f"blk.{il}."
        _vec(w, p + "attn_norm.weight", h)
        if kind == "M":
            _mat(w, p + "ssm_in.weight", h, d_in_proj)
            _f32(w, p + "ssm_conv1d.weight", NH_D_CONV, conv_dim)
            _vec(w, p + "ssm_conv1d.bias", conv_dim)
            _vec(w, p + "ssm_dt.bias", NH_SSM_HEADS)
            _f32(w, p + "ssm_a", 1, NH_SSM_HEADS)
            _f32(w, p + "ssm_d", 1, NH_SSM_HEADS)
            _f32(w, p + "ssm_norm.weight", d_inner // NH_GROUPS, NH_GROUPS)
            _mat(w, p + "ssm_out.weight", d_inner, h)
        elif kind == "*":
            _mat(w, p + "attn_q.weight", h, NH_HEADS * hd)
            _mat(w, p + "attn_k.weight", h, NH_KV * hd)
            _mat(w, p + "attn_v.weight", h, NH_KV * hd)
            _mat(w, p + "attn_output.weight", NH_HEADS * hd, h)
        else:
            _mat(w, p + "ffn_up.weight", h, NH_FF)
            _mat(w, p + "ffn_down.weight", NH_FF, h)


NEMOTRON_H_SPEC = ArchSpec(
    "nemotron-h-8b",
    "nemotron_h",
    "the Nemotron-H 8B config.json copied in NVIDIA-NeMo/Megatron-Bridge tests/unit_tests/models/nemotronh/"
    "test_nemotron_h_bridge.py (commit 03c781b8); tensors as llama.cpp's src/models/nemotron-h.cpp creates them",
    _shape(
        n_layers=len(NEMOTRON_H_PATTERN),
        hidden_size=NH_HIDDEN,
        n_heads=NH_HEADS,
        n_kv_heads=NH_KV,
        head_dim=NH_HIDDEN // NH_HEADS,
        vocab_size=NH_VOCAB,
        intermediate_size=NH_FF,
        attention_layers=[il for il, kind in enumerate(NEMOTRON_H_PATTERN) if kind == "*"],
        recurrent_layers=[il for il, kind in enumerate(NEMOTRON_H_PATTERN) if kind == "M"],
        recurrent_state_values=(NH_D_CONV - 1) * (NH_SSM_HEADS * NH_SSM_HEAD_DIM + 2 * NH_GROUPS * NH_STATE)
        + NH_STATE * NH_SSM_HEADS * NH_SSM_HEAD_DIM,
    ),
    write_nemotron_h,
)


def main() -> None:
    out = FIXTURES.parent / "llamacpp_arch"
    out.mkdir(parents=True, exist_ok=True)
    names = set(sys.argv[1:])
    for spec in (SPEC, NEMOTRON_H_SPEC):
        if names and spec.name not in names:
            continue
        with tempfile.TemporaryDirectory(prefix="rigfit-arch-") as tmp:
            data = measure(spec, Path(tmp))
        data["provenance"]["how"] = (
            "bench/validate_fit_gemma3n.py: sparse GGUF loaded in a subprocess, llama.cpp's report"
        )
        (out / f"{spec.name}.json").write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
