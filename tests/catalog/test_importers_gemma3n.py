"""Gemma 3n read from its config.json (catalog.importers): KV shared across the last layers, per-layer embeddings.

Shapes: Google's Gemma3n_E4B / Gemma3n_E2B (https://github.com/google-deepmind/gemma/blob/
7691fd4e7f26c9ec5db38110dddb3addfab4d767/gemma/gm/nn/gemma3n/_gemma3n.py: embed_dim 2048, hidden_dim 16384 / 8192,
35 / 30 layers, 8 heads of 256, 2 KV heads, num_embed 262,144, window 512, 4 local + 1 global, per_layer_input_dim 256,
20 unshared KV layers) in the keys of transformers' Gemma3nTextConfig, whose published configs list one
intermediate_size per layer. Expected parameter counts are the tensors llama.cpp creates for LLM_ARCH_GEMMA3N
(src/models/gemma3n.cpp, load_arch_tensors, ggml-org/llama.cpp a26ba0fe5f6a5de69a3d7f3bb89816a8f3ea2df0), written out.
"""

from __future__ import annotations

import pytest

from catalog import fit
from catalog.importers import ConfigError, model_fields_from_hf_config


def gemma3n_config(layers: int, ff: int) -> dict[str, object]:
    return {
        "model_type": "gemma3n_text",
        "hidden_size": 2048,
        "intermediate_size": [ff] * layers,
        "num_hidden_layers": layers,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "head_dim": 256,
        "vocab_size": 262144,
        "vocab_size_per_layer_input": 262144,
        "hidden_size_per_layer_input": 256,
        "max_position_embeddings": 32768,
        "sliding_window": 512,
        "num_kv_shared_layers": layers - 20,
        "altup_num_inputs": 4,
        "laurel_rank": 64,
    }


def per_layer_params(ff: int) -> int:
    e, a = 2048, 256
    attention = e * 2048 + 2 * e * 512 + 2048 * e + 2 * 256  # q, k, v, o; q/k norms of the 256-wide head
    mlp = 3 * e * ff
    per_layer_inputs = e * a + a * e  # per_layer_inp_gate, per_layer_proj
    altup = 4 * 4 + 4 * 16 + e * 4  # correct_coef, predict_coef, router
    laurel = e * 64 + 64 * e
    norms = 8 * e  # attn, attn_post, ffn, ffn_post, per_layer_post, altup correct_scale, router norm, laurel post
    return attention + mlp + per_layer_inputs + altup + laurel + norms


def global_params(layers: int) -> int:
    e, v, a = 2048, 262144, 256
    # token_embd (tied output), altup_proj + altup_unembd_proj, per_layer_token_embd, per_layer_model_proj,
    # per_layer_proj_norm, output_norm
    return e * v + 2 * e * e * 3 + a * layers * v + e * a * layers + a + e


@pytest.mark.parametrize(
    ("layers", "ff", "expected"),
    [
        # E2B: 30 layers x 62,153,296 + 2,591,033,600 global (2,013,265,920 of it per-layer embeddings)
        (30, 8192, 4_455_632_480),
        # E4B: 35 layers x 112,484,944 + 2,929,199,360 global (2,348,810,240 of it per-layer embeddings)
        (35, 16384, 6_866_172_400),
    ],
)
def test_it_counts_gemma_3n_parameters_as_llama_cpp_creates_them(layers, ff, expected):
    assert layers * per_layer_params(ff) + global_params(layers) == expected  # the hand count itself
    fields = model_fields_from_hf_config(gemma3n_config(layers, ff))
    assert fields["n_params"] == expected
    assert fields["intermediate_size"] == ff
    # per_layer_token_embd alone, which llama.cpp keeps in host memory: 262,144 x layers x 256
    # (E2B 2,013,265,920; E4B 2,348,810,240), already inside n_params.
    assert fields["per_layer_embed_params"] == 262_144 * layers * 256


def test_it_keeps_kv_on_the_layers_before_the_shared_ones():
    fields = model_fields_from_hf_config(gemma3n_config(35, 16384))
    # llama.cpp: n_layer_kv_from_start = 20; 35 - num_kv_shared_layers 15 = 20 layers own KV.
    assert fields["kv_heads_per_layer"] == [2] * 20 + [0] * 15
    # Gemma3nTextConfig's default pattern: every 5th layer global.
    assert [i for i in range(35) if i not in fields["swa_layers"]] == [4, 9, 14, 19, 24, 29, 34]
    assert fields["sliding_window"] == 512
    shape = fit.ModelShape(
        **{
            k: fields[k]
            for k in (
                "n_params",
                "n_layers",
                "hidden_size",
                "n_heads",
                "n_kv_heads",
                "head_dim",
                "vocab_size",
                "sliding_window",
                "swa_layers",
                "kv_heads_per_layer",
            )
        }
    )
    # F16 KV at 4,096 tokens: 16 sliding layers x 1,024 cells + 4 global x 4,096 cells, 2 x 2 x 256 x 2 bytes per
    # cell = 16 x 2,097,152 + 4 x 8,388,608 = 67,108,864 bytes.
    assert fit.kv_cache_bytes(shape, 4096) == 67_108_864


def test_it_reads_the_nested_multimodal_config():
    config = {
        "model_type": "gemma3n",
        "text_config": gemma3n_config(30, 8192),
        "vision_config": {"model_type": "gemma3n_vision", "hidden_size": 2048},
    }
    fields = model_fields_from_hf_config(config)
    assert fields["n_params"] == 4_455_632_480  # the MobileNet-V5 encoder is not a ViT the importer can count
    assert "vision_params" not in fields
    assert fields["kv_heads_per_layer"] == [2] * 20 + [0] * 10


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_kv_shared_layers": 35}, "leaves no layer"),
        ({"intermediate_size": []}, "empty list"),
        ({"intermediate_size": [16384, "wide"]}, "intermediate_size must be a positive integer"),
    ],
)
def test_it_rejects_a_broken_gemma_3n_config(change, message):
    with pytest.raises(ConfigError, match=message):
        model_fields_from_hf_config({**gemma3n_config(35, 16384), **change})


def test_it_reads_a_gemma_3n_gguf_header_as_llama_cpp_loads_it(tmp_path):
    import gguf
    import numpy as np

    from catalog.importers import model_fields_from_gguf

    # 22 layers, the smallest count llama.cpp's own test-llama-archs uses for Gemma 3n ("n_layer_kv_from_start = 20
    # is hardcoded"): layers 20 and 21 reuse earlier KV; layers 4, 9, 14 and 19 are global (swa_period 5).
    path = tmp_path / "gemma3n.gguf"
    writer = gguf.GGUFWriter(str(path), "gemma3n")
    writer.add_block_count(22)
    writer.add_context_length(32768)
    writer.add_embedding_length(64)
    writer.add_feed_forward_length(96)
    writer.add_head_count(2)
    writer.add_head_count_kv(1)
    writer.add_key_length(32)
    writer.add_sliding_window(512)
    writer.add_token_list([f"t{i}" for i in range(100)])
    writer.add_tensor("token_embd.weight", np.zeros((100, 64), dtype=np.float32))
    # llama.cpp's shape {n_embd_altup x n_layer, n_vocab}: 100 rows of 22 x 8 values
    writer.add_tensor("per_layer_token_embd.weight", np.zeros((100, 22 * 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    fields = model_fields_from_gguf(path).fields
    assert fields["kv_heads_per_layer"] == [1] * 20 + [0] * 2
    assert [i for i in range(22) if i not in fields["swa_layers"]] == [4, 9, 14, 19]
    assert fields["per_layer_embed_params"] == 100 * 22 * 8 == 17_600
