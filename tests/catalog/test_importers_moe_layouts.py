"""Parameter counts of MoE layouts the plain "every layer routes" count gets wrong: Llama 4's shared expert and
Maverick's every-other-layer MoE, and Qwen3-MoE configs that write `shared_expert_intermediate_size: 0`.

Shapes are the text_config of meta-llama/Llama-4-Scout-17B-16E-Instruct and -Maverick-17B-128E-Instruct as cited in
catalog/seed/models/catalog-a.toml; the block structure is transformers' Llama4TextMoe (routed experts, a router
without bias and one shared expert of `intermediate_size`) and Llama4TextMLP (`intermediate_size_mlp`) for the dense
layers of Maverick (`interleave_moe_layer_step = 2`). Meta's model card publishes 109B / 400B total, 17B active.
"""

from __future__ import annotations

import pytest

from catalog.importers import model_fields_from_hf_config

LLAMA4_TEXT = {
    "model_type": "llama4_text",
    "hidden_size": 5120,
    "intermediate_size": 8192,
    "intermediate_size_mlp": 16384,
    "head_dim": 128,
    "num_hidden_layers": 48,
    "num_attention_heads": 40,
    "num_key_value_heads": 8,
    "num_experts_per_tok": 1,
    "attention_chunk_size": 8192,
    "vocab_size": 202048,
}

# Worked out by hand:
EMBEDDINGS = 202048 * 5120 * 2  # input embeddings and an untied output head: 2,068,971,520
ATTENTION = 48 * (5120 * 5120 * 2 + 5120 * 1024 * 2)  # q, o and k, v per layer: 3,019,898,880
NORMS = 48 * 2 * 5120 + 5120  # 496,640
EXPERT = 3 * 5120 * 8192  # gate, up, down: 125,829,120
ROUTER_ROW = 5120  # one router row of `hidden` per expert


def _llama4(n_experts: int, step: int, context: int) -> dict:
    return {
        "model_type": "llama4",
        "text_config": {
            **LLAMA4_TEXT,
            "num_local_experts": n_experts,
            "interleave_moe_layer_step": step,
            "max_position_embeddings": context,
        },
    }


def test_it_counts_llama_4_scouts_shared_expert_on_every_layer():
    fields = model_fields_from_hf_config(_llama4(16, 1, 10485760))

    moe_layer = 16 * (EXPERT + ROUTER_ROW) + EXPERT  # 2,139,176,960
    assert fields["n_params"] == EMBEDDINGS + ATTENTION + 48 * moe_layer + NORMS == 107_769_861_120
    active_layer = 1 * (EXPERT + ROUTER_ROW) + EXPERT
    assert fields["n_active_params"] == EMBEDDINGS + ATTENTION + 48 * active_layer + NORMS == 17_169_208_320
    assert fields["n_params"] == pytest.approx(109e9, rel=0.02)  # the card's total includes the image encoder


def test_it_counts_llama_4_mavericks_dense_layers_between_its_moe_layers():
    fields = model_fields_from_hf_config(_llama4(128, 2, 1048576))

    moe_layer = 128 * (EXPERT + ROUTER_ROW) + EXPERT  # 16,232,611,840 on layers 1, 3, ..., 47
    dense_layer = 3 * 5120 * 16384  # 251,658,240 on layers 0, 2, ..., 46
    assert fields["n_params"] == EMBEDDINGS + ATTENTION + 24 * moe_layer + 24 * dense_layer + NORMS
    assert fields["n_params"] == 400_711_848_960
    active = EMBEDDINGS + ATTENTION + 24 * (EXPERT + ROUTER_ROW + EXPERT) + 24 * dense_layer + NORMS
    assert fields["n_active_params"] == active == 17_169_085_440


def test_it_reads_a_zero_shared_expert_width_as_no_shared_expert():
    qwen3_moe = {
        "model_type": "qwen3_moe",
        "hidden_size": 2048,
        "intermediate_size": 6144,
        "moe_intermediate_size": 768,
        "shared_expert_intermediate_size": 0,  # as Qwen3-Coder-30B-A3B-Instruct's config.json writes it
        "head_dim": 128,
        "num_hidden_layers": 48,
        "num_attention_heads": 32,
        "num_key_value_heads": 4,
        "num_experts": 128,
        "num_experts_per_tok": 8,
        "max_position_embeddings": 262144,
        "vocab_size": 151936,
    }
    without_key = {k: v for k, v in qwen3_moe.items() if k != "shared_expert_intermediate_size"}

    assert model_fields_from_hf_config(qwen3_moe)["n_params"] == model_fields_from_hf_config(without_key)["n_params"]
