"""Read model shapes from the files people publish: Hugging Face `config.json` and GGUF headers.

Pure parsing, no database writes: the management commands (`import_hf_config`, `import_gguf`) and the
`POST /api/fit/estimate` endpoint call these and decide what to store.

Returned keys are named as `catalog.models.Model` fields, so a caller can pass them straight to the model.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog import fit

__all__ = [
    "ConfigError",
    "GgufError",
    "GgufSummary",
    "estimate_n_params",
    "ftype_name",
    "model_fields_from_gguf",
    "model_fields_from_hf_config",
    "sha256_file",
]

# Sanity bounds: far above any published model, low enough to reject garbage before it reaches the fit engine.
# The Model fields an importer derives from a config.json or a GGUF header (import_hf_config, import_hf): an import may
# set these on an existing model; name, description and the like stay as the catalog has them.
ARCHITECTURE_FIELDS = (
    "n_params",
    "n_active_params",
    "n_layers",
    "hidden_size",
    "intermediate_size",
    "n_heads",
    "n_kv_heads",
    "head_dim",
    "vocab_size",
    "tied_embeddings",
    "sliding_window",
    "swa_layers",
    "kv_lora_rank",
    "qk_rope_head_dim",
    "n_experts",
    "n_experts_used",
    "vision_params",
    "image_tokens",
    "context_length",
    "attention_layers",
    "recurrent_layers",
    "recurrent_state_values",
    "kv_heads_per_layer",
    "per_layer_embed_params",
    "moe_layers",
)
_MAX_DIM = 1 << 20  # hidden/intermediate/head sizes
_MAX_LAYERS = 4096
_MAX_HEADS = 16_384
_MAX_VOCAB = 16 * 1024 * 1024
_MAX_CONTEXT = 1 << 27
_MAX_EXPERTS = 16_384
# Routed-expert tensors, as llama.cpp's --n-cpu-moe matches them (LLM_FFN_EXPS_REGEX in common/common.h:
# \.ffn_(up|down|gate|gate_up)_(ch|)exps, after blk.<i>).
_EXPERT_TENSOR_RE = re.compile(r"^blk\.(\d+)\.ffn_(?:up|down|gate|gate_up)_(?:ch|)exps(?:\.|$)")

# Model types whose attention has per-head RMS norms on q and k (Gemma 3, Qwen 3, OLMo 2).
_QK_NORM_TYPES = {"gemma3", "gemma3_text", "gemma3n", "gemma3n_text", "qwen3", "qwen3_moe", "olmo2"}
# Model types with four norms per block (pre/post attention, pre/post feed-forward).
_FOUR_NORM_TYPES = {"gemma2", "gemma3", "gemma3_text", "gemma3n", "gemma3n_text"}
# Model types with a plain two-matrix MLP (fc1/fc2, with biases) and LayerNorm (weight + bias).
_PLAIN_MLP_TYPES = {"phi", "gpt2", "gpt_neox", "gptj", "falcon", "starcoder2", "phi-msft", "moondream1"}
# Model types whose q/k/v projections carry biases even when the config says nothing.
_QKV_BIAS_TYPES = {"qwen2", "qwen2_vl", "qwen2_5_vl", "qwen2_moe"}
# Layers of a Gemma 3n GGUF that keep their own KV: llama.cpp sets hparams.n_layer_kv_from_start = 20 whatever the
# header says (src/models/gemma3n.cpp, load_arch_hparams; ggml-org/llama.cpp a26ba0fe5f6a5de69a3d7f3bb89816a8f3ea2df0).
GEMMA3N_KV_LAYERS = 20


class ConfigError(ValueError):
    """A config.json that cannot describe a model: the message names the key at fault."""


class GgufError(ValueError):
    """A file that is not a readable GGUF model: the message says why."""


# --------------------------------------------------------------------------------------------------------------------
# Hugging Face config.json
# --------------------------------------------------------------------------------------------------------------------


def _first(config: Mapping[str, Any], *keys: str) -> tuple[str | None, Any]:
    for key in keys:
        if key in config and config[key] is not None:
            return key, config[key]
    return None, None


def _positive_int(value: Any, key: str, *, maximum: int) -> int:
    # bool is an int in Python; a config that says `"num_hidden_layers": true` is garbage.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key} must be a positive integer, got {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ConfigError(f"{key} must be a positive integer, got {value!r}")
        value = int(value)
    if value <= 0:
        raise ConfigError(f"{key} must be a positive integer, got {value!r}")
    if value > maximum:
        raise ConfigError(f"{key} = {value} is implausibly large (limit {maximum})")
    return value


def _optional_width(config: Mapping[str, Any], key: str) -> int | None:
    """An optional width where 0 means "none" (Qwen3-MoE configs ship shared_expert_intermediate_size: 0)."""
    if config.get(key) == 0 and not isinstance(config.get(key), bool):
        return None
    return _optional(config, (key,), maximum=_MAX_DIM)


def _required(config: Mapping[str, Any], keys: tuple[str, ...], *, maximum: int) -> int:
    key, value = _first(config, *keys)
    if key is None:
        raise ConfigError(f"config has no {' / '.join(keys)}")
    return _positive_int(value, key, maximum=maximum)


def _optional(config: Mapping[str, Any], keys: tuple[str, ...], *, maximum: int) -> int | None:
    key, value = _first(config, *keys)
    if key is None:
        return None
    return _positive_int(value, key, maximum=maximum)


def _text_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], Mapping[str, Any] | None]:
    """The language-model part of a config, and the vision part if there is one.

    Vision-language configs (Gemma 3, LLaVA, Qwen2-VL in transformers 5, SmolVLM/Idefics3, Mistral 3) nest the
    language model under `text_config`; a few older ones use `llm_config` or `language_config`. Keys missing from
    the nested part that the top level carries (e.g. `tie_word_embeddings`) are taken from the top level.
    """
    nested = None
    for key in ("text_config", "llm_config", "language_config"):
        candidate = config.get(key)
        if candidate is not None:
            if not isinstance(candidate, Mapping):
                raise ConfigError(f"{key} must be an object, got {type(candidate).__name__}")
            nested = candidate
            break
    vision = config.get("vision_config")
    if vision is not None and not isinstance(vision, Mapping):
        raise ConfigError(f"vision_config must be an object, got {type(vision).__name__}")
    if nested is None:
        return dict(config), vision
    merged = {k: v for k, v in config.items() if k not in ("text_config", "llm_config", "language_config")}
    merged.pop("vision_config", None)
    merged.pop("model_type", None)
    merged.update(nested)
    return merged, vision


def _swa_layers(text: Mapping[str, Any], model_type: str, n_layers: int, window: int | None) -> list[int]:
    """Indices of sliding-window layers, following each architecture's own rule in transformers."""
    if window is None:
        return []
    layer_types = text.get("layer_types")
    if layer_types is not None:
        if not isinstance(layer_types, list) or len(layer_types) != n_layers:
            raise ConfigError(f"layer_types must be a list of {n_layers} entries")
        return [i for i, kind in enumerate(layer_types) if kind == "sliding_attention"]
    if model_type in ("gemma3n", "gemma3n_text"):
        # Gemma3nTextConfig: every 5th layer global, the others slide (llama.cpp's gemma3n swa_period 5).
        return [i for i in range(n_layers) if (i + 1) % 5 != 0]
    if model_type in ("gemma3", "gemma3_text"):
        # Gemma3TextConfig: layer i is sliding unless (i + 1) % sliding_window_pattern == 0 (default 6).
        pattern = _optional(text, ("sliding_window_pattern",), maximum=_MAX_LAYERS) or 6
        return [i for i in range(n_layers) if (i + 1) % pattern != 0]
    if model_type == "gemma2":
        # Gemma2: even layers slide, odd layers attend globally.
        return [i for i in range(n_layers) if i % 2 == 0]
    if model_type.startswith("qwen"):
        # Qwen2/Qwen3: sliding only with use_sliding_window, and only from max_window_layers on.
        if not text.get("use_sliding_window", False):
            return []
        start = text.get("max_window_layers", 0) or 0
        return [i for i in range(n_layers) if i >= start]
    return list(range(n_layers))


def _layer_indices(text: Mapping[str, Any], n_layers: int, kinds: set[str]) -> list[int] | None:
    """Indices whose `layer_types` entry is one of `kinds`; None when the config has no layer_types."""
    layer_types = text.get("layer_types")
    if layer_types is None:
        return None
    if not isinstance(layer_types, list) or len(layer_types) != n_layers:
        raise ConfigError(f"layer_types must be a list of {n_layers} entries")
    return [i for i, kind in enumerate(layer_types) if kind in kinds]


def _hybrid_fields(text: Mapping[str, Any], model_type: str, n_layers: int, hidden: int) -> dict[str, Any]:
    """Attention layers, recurrent layers and recurrent state size of a hybrid model, read as llama.cpp's converter
    reads them (convert_hf_to_gguf.py / conversion/*.py) and sized as llama.cpp sizes them (catalog.fit,
    mamba2_state_values, shortconv_state_values). Empty for a plain transformer."""
    dim = _MAX_DIM * 16
    if model_type == "qwen3_next":
        # Gated delta net: ssm_d_conv = linear_conv_kernel_dim, ssm_d_state = linear_key_head_dim, ssm_n_group =
        # linear_num_key_heads, ssm_d_inner = linear_value_head_dim x linear_num_value_heads (conversion/qwen.py).
        attn = _layer_indices(text, n_layers, {"full_attention"})
        if attn is None:
            interval = _optional(text, ("full_attention_interval",), maximum=_MAX_LAYERS) or 4
            attn = [i for i in range(n_layers) if (i + 1) % interval == 0]
        values = fit.mamba2_state_values(
            _required(text, ("linear_conv_kernel_dim",), maximum=dim),
            _required(text, ("linear_value_head_dim",), maximum=dim)
            * _required(text, ("linear_num_value_heads",), maximum=_MAX_HEADS),
            _required(text, ("linear_num_key_heads",), maximum=_MAX_HEADS),
            _required(text, ("linear_key_head_dim",), maximum=dim),
        )
    elif model_type in ("granitemoehybrid", "falcon_h1"):
        # Mamba-2 layers: d_inner = mamba_d_ssm (Falcon-H1) or mamba_expand x hidden (Granite 4.0 H), groups
        # mamba_n_groups, state mamba_d_state, conv mamba_d_conv (conversion/granite.py, conversion/falcon_h1.py).
        d_inner = _optional(text, ("mamba_d_ssm",), maximum=dim)
        if d_inner is None:
            d_inner = (_optional(text, ("mamba_expand",), maximum=64) or 2) * hidden
        values = fit.mamba2_state_values(
            _optional(text, ("mamba_d_conv",), maximum=dim) or 4,
            d_inner,
            _optional(text, ("mamba_n_groups",), maximum=_MAX_HEADS) or 1,
            _required(text, ("mamba_d_state",), maximum=dim),
        )
        if model_type == "falcon_h1":
            # Falcon-H1 runs attention and Mamba-2 side by side in every layer (llama.cpp create_memory: both filters
            # accept every layer).
            return {
                "attention_layers": None,
                "recurrent_layers": list(range(n_layers)),
                "recurrent_state_values": values,
            }
        attn = _layer_indices(text, n_layers, {"attention"})
        if attn is None:
            attn = [i for i in (text.get("attn_layer_indices") or []) if isinstance(i, int) and 0 <= i < n_layers]
    elif model_type == "nemotron_h":
        # Nemotron-H: hybrid_override_pattern names each layer, M a Mamba-2 mixer (a recurrent state), * attention (a
        # KV cache), - an MLP alone (neither); d_inner = mamba_num_heads x mamba_head_dim (conversion of
        # NemotronHForCausalLM in llama.cpp: ssm_inner_size, ssm_group_count = n_groups, ssm_state_size).
        pattern = _nemotron_h_pattern(text, n_layers)
        values = fit.mamba2_state_values(
            _optional(text, ("conv_kernel",), maximum=dim) or 4,
            _required(text, ("mamba_num_heads",), maximum=_MAX_HEADS)
            * _required(text, ("mamba_head_dim",), maximum=dim),
            _optional(text, ("n_groups",), maximum=_MAX_HEADS) or 1,
            _required(text, ("ssm_state_size",), maximum=dim),
        )
        return {
            "attention_layers": [i for i, kind in enumerate(pattern) if kind == "*"],
            "recurrent_layers": [i for i, kind in enumerate(pattern) if kind == "M"],
            "recurrent_state_values": values,
        }
    elif model_type == "lfm2":
        # Short-convolution layers keep n_embd x (conv_L_cache - 1) values (src/llama-hparams.cpp n_embd_r).
        attn = _layer_indices(text, n_layers, {"full_attention"})
        if attn is None:
            attn = [i for i in (text.get("full_attn_idxs") or []) if isinstance(i, int) and 0 <= i < n_layers]
        values = fit.shortconv_state_values(hidden, _required(text, ("conv_L_cache",), maximum=4096))
    else:
        return {}
    return {
        "attention_layers": sorted(attn),
        "recurrent_layers": [i for i in range(n_layers) if i not in set(attn)],
        "recurrent_state_values": values,
    }


def _nemotron_h_pattern(text: Mapping[str, Any], n_layers: int) -> str:
    pattern = text.get("hybrid_override_pattern")
    if not isinstance(pattern, str) or len(pattern) != n_layers or set(pattern) - set("M*-"):
        raise ConfigError(f"hybrid_override_pattern must be {n_layers} characters of M, * and -")
    return pattern


def _nemotron_h_params(text: Mapping[str, Any], fields: Mapping[str, Any], vocab: int) -> int:
    """Nemotron-H's parameters layer by layer (transformers' NemotronH blocks: one norm and one mixer per layer): a
    Mamba-2 mixer (in_proj to 2 x d_inner + 2 x groups x state + heads, a conv of (d_inner + 2 x groups x state) x
    conv_kernel with bias, dt bias, A and D per head, a gated norm of d_inner, out_proj), an attention mixer (q, k, v,
    o without biases) or a squared-ReLU MLP (up and down, no gate); embeddings, the output head unless tied, a final
    norm."""
    hidden, n_layers = int(fields["hidden_size"]), int(fields["n_layers"])
    pattern = _nemotron_h_pattern(text, n_layers)
    heads = _required(text, ("mamba_num_heads",), maximum=_MAX_HEADS)
    d_inner = heads * _required(text, ("mamba_head_dim",), maximum=_MAX_DIM)
    groups = _optional(text, ("n_groups",), maximum=_MAX_HEADS) or 1
    state = _required(text, ("ssm_state_size",), maximum=_MAX_DIM)
    conv = _optional(text, ("conv_kernel",), maximum=_MAX_DIM) or 4
    conv_dim = d_inner + 2 * groups * state
    mamba = hidden * (2 * d_inner + 2 * groups * state + heads) + conv_dim * conv + conv_dim + 3 * heads
    mamba += d_inner + d_inner * hidden
    q_width, kv_width = (
        int(fields["n_heads"]) * int(fields["head_dim"]),
        int(fields["n_kv_heads"]) * int(fields["head_dim"]),
    )
    attention = 2 * hidden * q_width + 2 * hidden * kv_width
    mlp = 2 * hidden * int(fields["intermediate_size"])
    mixers = {"M": mamba, "*": attention, "-": mlp}
    embeddings = vocab * hidden * (1 if fields["tied_embeddings"] else 2)
    return embeddings + sum(mixers[kind] + hidden for kind in pattern) + hidden


def _gemma3n_fields(text: Mapping[str, Any], n_layers: int, hidden: int, n_kv_heads: int) -> dict[str, Any]:
    """Gemma 3n: the last `num_kv_shared_layers` layers reuse an earlier layer's KV and keep none of their own
    (llama.cpp: hparams.n_layer_kv_from_start, src/models/gemma3n.cpp; transformers: Gemma3nTextConfig's
    kv_sharing_roles), and the parameters a Llama-style count misses (`extra_params`, which estimate_n_params adds):
    the per-layer token embeddings (vocab_size_per_layer_input x hidden_size_per_layer_input x layers), their
    projection from the hidden state, each layer's per-layer gate and projection, the AltUp projections and
    coefficients, the LAuReL low-rank pair and the extra norms (the tensors llama.cpp's load_arch_tensors creates for
    LLM_ARCH_GEMMA3N)."""
    shared = _optional(text, ("num_kv_shared_layers",), maximum=_MAX_LAYERS) or 0
    if shared >= n_layers:
        raise ConfigError(f"num_kv_shared_layers ({shared}) leaves no layer with its own KV cache")
    per_layer_dim = _optional(text, ("hidden_size_per_layer_input",), maximum=_MAX_DIM) or 0
    per_layer_vocab = _optional(text, ("vocab_size_per_layer_input",), maximum=_MAX_VOCAB) or 0
    altup = _optional(text, ("altup_num_inputs",), maximum=64) or 1
    laurel = _optional(text, ("laurel_rank",), maximum=_MAX_DIM) or 0
    extra = per_layer_vocab * per_layer_dim * n_layers + hidden * per_layer_dim * n_layers + per_layer_dim
    extra += 2 * hidden * hidden * (altup - 1)
    per_layer = (
        2 * hidden * per_layer_dim  # per-layer input gate and projection
        + altup * altup
        + altup * altup * altup
        + hidden * altup  # AltUp correct/predict coefficients, router
        + 2 * hidden * laurel  # LAuReL left and right
        + 4 * hidden  # per-layer post norm, AltUp correct scale and router norm, LAuReL post norm
    )
    return {
        "kv_heads_per_layer": [n_kv_heads] * (n_layers - shared) + [0] * shared if shared else [],
        "extra_params": extra + n_layers * per_layer,
        # The per-layer token embeddings alone (counted in extra_params too): llama.cpp keeps this table in host
        # memory (catalog.fit.ModelShape.per_layer_embed_params).
        "per_layer_embed_params": per_layer_vocab * per_layer_dim * n_layers or None,
    }


def _vision_params(vision: Mapping[str, Any]) -> int | None:
    """A ViT-style encoder's parameter count (patch embedding, position embedding, blocks); None if not described."""
    try:
        hidden = _positive_int(vision.get("hidden_size"), "vision_config.hidden_size", maximum=_MAX_DIM)
        inter = _positive_int(vision.get("intermediate_size"), "vision_config.intermediate_size", maximum=_MAX_DIM)
        layers = _positive_int(vision.get("num_hidden_layers"), "vision_config.num_hidden_layers", maximum=_MAX_LAYERS)
        patch = _positive_int(vision.get("patch_size"), "vision_config.patch_size", maximum=4096)
        image = _positive_int(vision.get("image_size"), "vision_config.image_size", maximum=1 << 16)
    except ConfigError:
        return None
    channels = vision.get("num_channels", 3) if isinstance(vision.get("num_channels", 3), int) else 3
    patch_embed = channels * patch * patch * hidden + hidden
    positions = (image // patch) ** 2 * hidden
    # Per block: q, k, v, o with biases; fc1, fc2 with biases; two LayerNorms (weight + bias).
    block = 4 * (hidden * hidden + hidden) + (hidden * inter + inter) + (inter * hidden + hidden) + 4 * hidden
    return patch_embed + positions + layers * block + 2 * hidden


def model_fields_from_hf_config(config: Any) -> dict[str, Any]:
    """Model architecture fields from a Hugging Face config.json (already parsed).

    Handles plain decoder configs (Llama, Mistral, Qwen 2/2.5/3, Phi, Gemma 2/3) and vision-language configs that
    nest the language model under `text_config` (with `vision_config` for the encoder), mixture-of-experts configs
    (Mixtral `num_local_experts`, Qwen-MoE `num_experts`, DeepSeek `n_routed_experts`, with `num_experts_per_tok`)
    and DeepSeek's multi-head latent attention (`kv_lora_rank`, `qk_rope_head_dim`).

    Returns keys named as Model fields: n_layers, hidden_size, intermediate_size, n_heads, n_kv_heads, head_dim,
    vocab_size, tied_embeddings, sliding_window, swa_layers, kv_lora_rank, qk_rope_head_dim, n_experts,
    n_experts_used, context_length, n_params (an estimate, see `estimate_n_params`), n_active_params (MoE only),
    vision_params and image_tokens (vision-language only, when the config describes them).

    Raises ConfigError naming the missing or invalid key.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"config must be a JSON object, got {type(config).__name__}")
    text, vision = _text_config(config)
    model_type = str(text.get("model_type") or config.get("model_type") or "").lower()

    n_layers = _required(text, ("num_hidden_layers", "n_layer", "num_layers", "n_layers"), maximum=_MAX_LAYERS)
    hidden = _required(text, ("hidden_size", "n_embd", "d_model", "dim"), maximum=_MAX_DIM)
    n_heads = _required(text, ("num_attention_heads", "n_head", "n_heads"), maximum=_MAX_HEADS)
    if text.get("multi_query") is True:
        n_kv_heads = 1
    else:
        n_kv_heads = _optional(text, ("num_key_value_heads", "n_head_kv", "n_kv_heads"), maximum=_MAX_HEADS) or n_heads
    if n_kv_heads > n_heads:
        raise ConfigError(f"num_key_value_heads ({n_kv_heads}) exceeds num_attention_heads ({n_heads})")
    if n_heads % n_kv_heads:
        raise ConfigError(f"num_attention_heads ({n_heads}) is not a multiple of num_key_value_heads ({n_kv_heads})")
    vocab = _required(text, ("vocab_size", "padded_vocab_size", "n_vocab"), maximum=_MAX_VOCAB)

    kv_lora_rank = _optional(text, ("kv_lora_rank",), maximum=_MAX_DIM)
    qk_rope = _optional(text, ("qk_rope_head_dim",), maximum=_MAX_DIM)
    qk_nope = _optional(text, ("qk_nope_head_dim",), maximum=_MAX_DIM)
    head_dim = _optional(text, ("head_dim",), maximum=_MAX_DIM)
    if head_dim is None:
        if kv_lora_rank and qk_rope and qk_nope:
            head_dim = qk_nope + qk_rope
        elif hidden % n_heads:
            raise ConfigError(f"head_dim is missing and hidden_size ({hidden}) is not divisible by heads ({n_heads})")
        else:
            head_dim = hidden // n_heads

    n_experts = _optional(text, ("num_local_experts", "num_experts", "n_routed_experts"), maximum=_MAX_EXPERTS)
    n_experts_used = _optional(text, ("num_experts_per_tok", "moe_topk", "num_selected_experts"), maximum=_MAX_EXPERTS)
    if n_experts and n_experts_used and n_experts_used > n_experts:
        raise ConfigError(f"num_experts_per_tok ({n_experts_used}) exceeds the number of experts ({n_experts})")
    if n_experts is not None and n_experts_used is None:
        raise ConfigError("config has experts but no num_experts_per_tok")

    widths = text.get("intermediate_size")
    if isinstance(widths, list):
        # Gemma 3n lists one width per layer (all equal in E2B and E4B); the widest bounds the memory.
        if not widths:
            raise ConfigError("intermediate_size is an empty list")
        widest = max(_positive_int(w, "intermediate_size", maximum=_MAX_DIM) for w in widths)
        text = {**text, "intermediate_size": widest}
    dense_inter = _optional(
        text, ("intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size", "block_ff_dim"), maximum=_MAX_DIM
    )
    moe_inter = _optional(text, ("moe_intermediate_size",), maximum=_MAX_DIM)
    if dense_inter is None and model_type in _PLAIN_MLP_TYPES:
        dense_inter = 4 * hidden  # GPT-2/Phi convention: n_inner defaults to 4 * n_embd
    if model_type == "lfm2" and dense_inter and text.get("block_auto_adjust_ff_dim"):
        # LFM2's MLP shrinks the configured width as LLaMA's does (transformers Lfm2MLP): 2/3 of it, times
        # block_ffn_dim_multiplier, rounded up to block_multiple_of; 6656 -> 4608 for LFM2-350M and 12288 -> 8192 for
        # LFM2-1.2B, the n_ff llama.cpp's src/models/lfm2.cpp names those sizes by.
        width = int(2 * dense_inter / 3)
        multiplier = text.get("block_ffn_dim_multiplier")
        if isinstance(multiplier, int | float) and not isinstance(multiplier, bool) and multiplier > 0:
            width = int(multiplier * width)
        step = _optional(text, ("block_multiple_of",), maximum=_MAX_DIM) or 1
        dense_inter = -(-width // step) * step
    # For MoE models the Model field holds the expert FFN width (what runs per token).
    intermediate = (moe_inter or dense_inter) if n_experts else dense_inter
    if intermediate is None:
        raise ConfigError("config has no intermediate_size")

    context = _required(
        text, ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"), maximum=_MAX_CONTEXT
    )
    window = _optional(text, ("sliding_window",), maximum=_MAX_CONTEXT)
    if window is not None and window >= context:
        window = None  # a window as long as the context bounds nothing (Phi-3.5 ships 262144)
    chunk = _optional(text, ("attention_chunk_size",), maximum=_MAX_CONTEXT)
    if model_type in ("llama4", "llama4_text") and chunk and chunk < context and window is None:
        # Llama 4's chunked attention: llama.cpp sizes the chunked layers' KV like sliding-window layers of
        # n_swa = 8192 (src/models/llama4.cpp: LLAMA_SWA_TYPE_CHUNKED, load_swa_pattern(ml, 4): 3 chunked, 1 full).
        window = chunk
        no_rope = text.get("no_rope_layers")
        chunked = _layer_indices(text, n_layers, {"chunked_attention"})
        if chunked is not None:
            swa_layers = chunked  # newer configs name each layer's attention (MobileLLM-R1: all full)
        elif isinstance(no_rope, list) and len(no_rope) == n_layers and any(no_rope):
            # transformers: no_rope_layers[i] == 0 marks a NoPE layer, which attends globally.
            swa_layers = [i for i, rope in enumerate(no_rope) if rope]
        else:
            swa_layers = [i for i in range(n_layers) if i % 4 < 3]
        if not swa_layers:
            window = None
    else:
        swa_layers = _swa_layers(text, model_type, n_layers, window)
    if not swa_layers:
        window = None

    tied = text.get("tie_word_embeddings")
    if tied is None and model_type == "lfm2":
        tied = text.get("tie_embedding")  # LFM2's own key; llama.cpp falls back to the token embeddings (lfm2.cpp)
    if tied is None:
        # transformers' per-architecture default: Gemma ties input and output embeddings, the others here do not.
        tied = model_type.startswith("gemma") or model_type in ("moondream1",)
    if not isinstance(tied, bool):
        raise ConfigError(f"tie_word_embeddings must be true or false, got {tied!r}")

    fields: dict[str, Any] = {
        "n_layers": n_layers,
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "n_heads": n_heads,
        "n_kv_heads": n_kv_heads,
        "head_dim": head_dim,
        "vocab_size": vocab,
        "tied_embeddings": tied,
        "sliding_window": window,
        "swa_layers": swa_layers,
        "kv_lora_rank": kv_lora_rank,
        "qk_rope_head_dim": qk_rope if kv_lora_rank else None,
        "n_experts": n_experts,
        "n_experts_used": n_experts_used if n_experts else None,
        "context_length": context,
    }
    fields.update(_hybrid_fields(text, model_type, n_layers, hidden))
    if model_type in ("gemma3n", "gemma3n_text"):
        fields.update(_gemma3n_fields(text, n_layers, hidden, n_kv_heads))

    # Llama 4 (transformers Llama4TextMoe): every MoE layer adds one shared expert as wide as a routed one; with
    # interleave_moe_layer_step = 2 (Maverick) only every second layer is MoE, the others are dense MLPs of
    # intermediate_size_mlp.
    is_llama4 = model_type in ("llama4", "llama4_text")
    shape_extras: dict[str, Any] = {
        "model_type": model_type,
        "attention_bias": bool(text.get("attention_bias", False))
        or model_type in _QKV_BIAS_TYPES
        or model_type in _PLAIN_MLP_TYPES,
        "mlp_bias": bool(text.get("mlp_bias", False)),
        "qk_norm": model_type in _QK_NORM_TYPES,
        "norms_per_layer": 4 if model_type in _FOUR_NORM_TYPES else 2,
        "plain_mlp": model_type in _PLAIN_MLP_TYPES,
        "dense_intermediate_size": _optional(text, ("intermediate_size_mlp",), maximum=_MAX_DIM)
        if is_llama4
        else dense_inter,
        "moe_intermediate_size": moe_inter,
        "n_shared_experts": _optional(text, ("n_shared_experts",), maximum=_MAX_EXPERTS) or (1 if is_llama4 else 0),
        "moe_layer_step": _optional(text, ("interleave_moe_layer_step",), maximum=n_layers) if is_llama4 else None,
        "shared_expert_intermediate_size": _optional_width(text, "shared_expert_intermediate_size"),
        "first_k_dense_replace": text.get("first_k_dense_replace", 0) or 0,
        "q_lora_rank": _optional(text, ("q_lora_rank",), maximum=_MAX_DIM),
        "qk_nope_head_dim": qk_nope,
        "v_head_dim": _optional(text, ("v_head_dim",), maximum=_MAX_DIM),
        "extra_params": fields.pop("extra_params", 0),
    }
    if n_experts:
        # The layers that hold routed experts, where not every layer does (Maverick, DeepSeek's leading dense
        # layers): llama.cpp's --n-cpu-moe moves only theirs (fit.ModelShape.moe_layers).
        moe = moe_layer_indices(n_layers, shape_extras["first_k_dense_replace"], shape_extras["moe_layer_step"])
        if len(moe) < n_layers:
            fields["moe_layers"] = moe
    n_params = estimate_n_params({**fields, **shape_extras})
    if n_experts:
        fields["n_active_params"] = estimate_n_params({**fields, **shape_extras, "n_experts": n_experts_used})
    if vision is not None:
        vision_params = _vision_params(vision)
        if vision_params:
            fields["vision_params"] = vision_params
            n_params += vision_params
        tokens = _optional(config, ("mm_tokens_per_image", "image_seq_length"), maximum=1 << 20)
        if tokens:
            fields["image_tokens"] = tokens
    if model_type == "nemotron_h":
        n_params = _nemotron_h_params(text, fields, vocab) + (fields.get("vision_params") or 0)
    fields["n_params"] = n_params
    return fields


def moe_layer_indices(n_layers: int, first_k_dense: int | None = 0, step: int | None = 1) -> list[int]:
    """The layers of a MoE whose feed-forward is a mixture of experts: after the first `first_k_dense` dense layers
    (DeepSeek V2/V3, Kimi K2: first_k_dense_replace; llama.cpp src/models/deepseek2.cpp: `i < n_layer_dense_lead` is
    dense), every `step`-th layer (Llama 4: interleave_moe_layer_step; llama.cpp src/models/llama4.cpp: is_moe_layer =
    (i + 1) % n_moe_layer_step == 0, so Maverick's step 2 gives layers 1, 3, ..., 47)."""
    dense = min(max(int(first_k_dense or 0), 0), n_layers)
    every = max(int(step or 1), 1)
    return list(range(dense + every - 1, n_layers, every))


# --------------------------------------------------------------------------------------------------------------------
# Parameter count from the shape
# --------------------------------------------------------------------------------------------------------------------


def estimate_n_params(fields: Mapping[str, Any]) -> int:
    """Parameter count of a decoder-only transformer from its shape (language model only).

    Sum of:
    - token embeddings `vocab_size * hidden_size`, plus an output head of the same size unless `tied_embeddings`;
    - per layer, attention: q `hidden * n_heads * head_dim`, k and v `hidden * n_kv_heads * head_dim` each, output
      `n_heads * head_dim * hidden` (+ q/k/v biases when `attention_bias`, + per-head q/k norms when `qk_norm`).
      With MLA (`kv_lora_rank`): q (optionally through `q_lora_rank`), kv down-projection to
      `kv_lora_rank + qk_rope_head_dim`, its norm, kv up-projection to `n_heads * (qk_nope_head_dim + v_head_dim)`;
    - per layer, feed-forward: gated (gate, up, down) `3 * hidden * intermediate_size`, or with `plain_mlp`
      (fc1/fc2 with biases) `2 * hidden * intermediate + intermediate + hidden`. With `n_experts`, each of the
      `n_experts` experts is a gated MLP of `moe_intermediate_size` (default `intermediate_size`), plus a router
      `hidden * n_experts`, plus `n_shared_experts` shared experts; the first `first_k_dense_replace` layers are dense
      with `dense_intermediate_size`;
    - norms: `norms_per_layer` (default 2; Gemma 2/3 have 4) vectors of `hidden` per layer and a final one
      (LayerNorm with bias doubles them for `plain_mlp` models).

    Optional keys beyond the Model fields (all default to a Llama-style block): attention_bias, mlp_bias, qk_norm,
    norms_per_layer, plain_mlp, moe_intermediate_size, dense_intermediate_size, n_shared_experts,
    shared_expert_intermediate_size, first_k_dense_replace, moe_layer_step (every step-th layer is MoE: Llama 4),
    q_lora_rank, qk_nope_head_dim, v_head_dim, and
    extra_params (parameters outside this block structure, added as they are: Gemma 3n's per-layer embeddings).

    Exact for Llama 3.1 8B (8,030,261,248) and Gemma 3 270M (268,098,176); see tests/catalog/test_importers.py.
    """
    hidden = int(fields["hidden_size"])
    n_layers = int(fields["n_layers"])
    n_heads = int(fields["n_heads"])
    n_kv = int(fields.get("n_kv_heads") or n_heads)
    head_dim = int(fields.get("head_dim") or hidden // n_heads)
    vocab = int(fields["vocab_size"])
    inter = int(fields.get("intermediate_size") or 4 * hidden)
    plain = bool(fields.get("plain_mlp", False))

    total = vocab * hidden * (1 if fields.get("tied_embeddings") else 2)
    if plain and not fields.get("tied_embeddings"):
        total += vocab  # Phi/GPT-style output heads carry a bias

    kv_lora = fields.get("kv_lora_rank")
    if kv_lora:
        rope = int(fields.get("qk_rope_head_dim") or 0)
        nope = int(fields.get("qk_nope_head_dim") or max(head_dim - rope, 0))
        v_dim = int(fields.get("v_head_dim") or nope)
        q_lora = fields.get("q_lora_rank")
        q_out = n_heads * (nope + rope)
        q = hidden * q_lora + q_lora + q_lora * q_out if q_lora else hidden * q_out
        kv = hidden * (kv_lora + rope) + kv_lora + kv_lora * n_heads * (nope + v_dim)
        attention = q + kv + n_heads * v_dim * hidden
    else:
        q_width, kv_width = n_heads * head_dim, n_kv * head_dim
        attention = hidden * q_width + 2 * hidden * kv_width + q_width * hidden
        if fields.get("attention_bias"):
            attention += q_width + 2 * kv_width + (hidden if plain else 0)
        if fields.get("qk_norm"):
            attention += 2 * head_dim

    def gated_mlp(width: int) -> int:
        return 3 * hidden * width + ((2 * width + hidden) if fields.get("mlp_bias") else 0)

    if plain:
        dense_mlp = 2 * hidden * inter + inter + hidden
    else:
        dense_mlp = gated_mlp(int(fields.get("dense_intermediate_size") or inter))

    n_experts = fields.get("n_experts")
    if n_experts:
        expert_width = int(fields.get("moe_intermediate_size") or inter)
        shared_width = int(fields.get("shared_expert_intermediate_size") or expert_width)
        n_shared = int(fields.get("n_shared_experts") or 0)
        moe_mlp = int(n_experts) * (gated_mlp(expert_width) + hidden) + n_shared * gated_mlp(shared_width)
        if fields.get("shared_expert_intermediate_size") and not n_shared:
            moe_mlp += gated_mlp(shared_width) + hidden  # Qwen-MoE: one shared expert with its own gate
        moe_layers = len(moe_layer_indices(n_layers, fields.get("first_k_dense_replace"), fields.get("moe_layer_step")))
        mlp_total = (n_layers - moe_layers) * dense_mlp + moe_layers * moe_mlp
    else:
        mlp_total = n_layers * dense_mlp

    norm_width = hidden * (2 if plain else 1)
    norms = n_layers * int(fields.get("norms_per_layer") or 2) * norm_width + norm_width
    if plain:
        norms -= n_layers * norm_width  # Phi-style blocks share one LayerNorm between attention and MLP
    return total + n_layers * attention + mlp_total + norms + int(fields.get("extra_params") or 0)


# --------------------------------------------------------------------------------------------------------------------
# GGUF headers
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GgufSummary:
    """What a GGUF header says about the model inside, with exact byte and element counts."""

    path: Path
    file_name: str
    file_bytes: int
    architecture: str
    name: str
    quant_name: str  # llama.cpp's LLAMA_FTYPE without its MOSTLY_/ALL_ prefix: Q4_K_M, Q8_0, F16, ...
    tensor_bytes: int  # sum of every tensor's data size
    n_params: int  # sum of every tensor's element count
    bits_per_weight: float  # tensor_bytes * 8 / n_params
    fields: dict[str, Any] = field(default_factory=dict)  # Model architecture fields
    tensor_types: dict[str, int] = field(default_factory=dict)  # ggml type name -> number of tensors


def ftype_name(file_type: int | None) -> str:
    """llama.cpp's LLAMA_FTYPE (gguf.LlamaFileType) as a quant name: 15 -> "Q4_K_M", 1 -> "F16"."""
    from gguf import LlamaFileType

    if file_type is None:
        return "unknown"
    try:
        name = LlamaFileType(int(file_type)).name
    except ValueError:
        return f"ftype-{file_type}"
    for prefix in ("MOSTLY_", "ALL_"):
        name = name.removeprefix(prefix)
    return name


def sha256_file(path: Path | str, *, chunk_bytes: int = 4 * 1024 * 1024) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def _field_value(reader: Any, key: str) -> Any:
    reader_field = reader.fields.get(key)
    if reader_field is None:
        return None
    return reader_field.contents()


def _gguf_int(reader: Any, key: str, *, required: bool = False) -> int | None:
    value = _field_value(reader, key)
    if isinstance(value, list):  # per-layer arrays (e.g. OpenELM head counts): the largest bounds the memory
        value = max(value) if value else None
    if value is None:
        if required:
            raise GgufError(f"GGUF header has no {key}")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise GgufError(f"GGUF header {key} must be a positive integer, got {value!r}")
    return int(value)


def model_fields_from_gguf(path: Path | str) -> GgufSummary:
    """Read a GGUF file's header (memory-mapped; tensor data is not read) into a GgufSummary.

    Architecture fields come from `{arch}.block_count`, `.embedding_length`, `.feed_forward_length`,
    `.attention.head_count`, `.attention.head_count_kv`, `.attention.key_length`, `.context_length`,
    `.attention.sliding_window`, `.expert_count`, `.expert_used_count`; vocab size from `tokenizer.ggml.tokens`
    (or `{arch}.vocab_size`). Sliding-window layers follow llama.cpp's rule per architecture (Gemma 3: every 6th
    layer global; Gemma 2: odd layers global) unless the header carries `.attention.sliding_window_pattern`.

    Raises GgufError for a missing file, a file that is not GGUF, or a header without the required keys.
    """
    from gguf import GGUFReader

    path = Path(path)
    if not path.is_file():
        raise GgufError(f"{path}: no such file")
    try:
        reader = GGUFReader(path)
    except (ValueError, OSError, IndexError, KeyError, TypeError, OverflowError) as exc:
        raise GgufError(f"{path.name}: not a readable GGUF file ({exc})") from exc

    arch = _field_value(reader, "general.architecture")
    if not isinstance(arch, str) or not arch:
        raise GgufError(f"{path.name}: GGUF header has no general.architecture")

    n_layers = _gguf_int(reader, f"{arch}.block_count", required=True)
    hidden = _gguf_int(reader, f"{arch}.embedding_length", required=True)
    n_heads = _gguf_int(reader, f"{arch}.attention.head_count", required=True)
    n_kv = _gguf_int(reader, f"{arch}.attention.head_count_kv") or n_heads
    head_dim = _gguf_int(reader, f"{arch}.attention.key_length") or (hidden // n_heads)
    context = _gguf_int(reader, f"{arch}.context_length", required=True)
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    vocab = len(tokens.data) if tokens is not None else _gguf_int(reader, f"{arch}.vocab_size")
    if not vocab:
        raise GgufError(f"{path.name}: GGUF header has neither tokenizer.ggml.tokens nor {arch}.vocab_size")
    n_experts = _gguf_int(reader, f"{arch}.expert_count")
    n_experts_used = _gguf_int(reader, f"{arch}.expert_used_count") if n_experts else None
    window = _gguf_int(reader, f"{arch}.attention.sliding_window")
    kv_lora = _gguf_int(reader, f"{arch}.attention.kv_lora_rank")
    rope_dim = _gguf_int(reader, f"{arch}.rope.dimension_count") if kv_lora else None

    swa_layers: list[int] = []
    if window:
        pattern = _field_value(reader, f"{arch}.attention.sliding_window_pattern")
        if isinstance(pattern, list) and len(pattern) == n_layers:
            swa_layers = [i for i, sliding in enumerate(pattern) if sliding]
        elif arch == "gemma3n":
            # llama.cpp's Gemma 3n: swa_period 5, every 5th layer global (src/models/gemma3n.cpp, load_arch_hparams).
            swa_layers = [i for i in range(n_layers) if (i + 1) % 5 != 0]
        elif arch == "gemma3":
            swa_layers = [i for i in range(n_layers) if (i + 1) % 6 != 0]
        elif arch == "gemma2":
            swa_layers = [i for i in range(n_layers) if i % 2 == 0]
        else:
            swa_layers = list(range(n_layers))

    tensor_types: dict[str, int] = {}
    tensor_bytes = 0
    n_params = 0
    has_output = False
    per_layer_embed = 0
    expert_layers: set[int] = set()
    for tensor in reader.tensors:
        tensor_bytes += int(tensor.n_bytes)
        n_params += int(tensor.n_elements)
        type_name = tensor.tensor_type.name
        tensor_types[type_name] = tensor_types.get(type_name, 0) + 1
        has_output = has_output or tensor.name == "output.weight"
        if tensor.name == "per_layer_token_embd.weight":  # Gemma 3n: kept in host memory by llama.cpp
            per_layer_embed = int(tensor.n_elements)
        expert = _EXPERT_TENSOR_RE.match(tensor.name)
        if expert:
            expert_layers.add(int(expert.group(1)))
    if n_params == 0:
        raise GgufError(f"{path.name}: GGUF file holds no tensors")

    fields: dict[str, Any] = {
        "n_layers": n_layers,
        "hidden_size": hidden,
        "intermediate_size": _gguf_int(reader, f"{arch}.expert_feed_forward_length")
        if n_experts
        else _gguf_int(reader, f"{arch}.feed_forward_length"),
        "n_heads": n_heads,
        "n_kv_heads": n_kv,
        "head_dim": head_dim,
        "vocab_size": vocab,
        "tied_embeddings": not has_output,
        "sliding_window": window if swa_layers else None,
        "swa_layers": swa_layers,
        "kv_lora_rank": kv_lora,
        "qk_rope_head_dim": rope_dim,
        "n_experts": n_experts,
        "n_experts_used": n_experts_used,
        "context_length": context,
        "n_params": n_params,
    }
    if per_layer_embed:
        fields["per_layer_embed_params"] = per_layer_embed
    if n_experts and expert_layers and len(expert_layers) < n_layers:
        fields["moe_layers"] = sorted(expert_layers)  # the tensors --n-cpu-moe's pattern moves, layer by layer
    if fields["intermediate_size"] is None and not n_experts:
        fields["intermediate_size"] = _gguf_int(reader, f"{arch}.feed_forward_length")
    if n_kv > n_heads:
        raise GgufError(f"{path.name}: head_count_kv ({n_kv}) exceeds head_count ({n_heads})")
    if arch == "gemma3n" and n_layers > GEMMA3N_KV_LAYERS:
        # llama.cpp keeps KV on the first 20 layers only; the later ones reuse it (hparams.n_layer_kv_from_start).
        fields["kv_heads_per_layer"] = [n_kv] * GEMMA3N_KV_LAYERS + [0] * (n_layers - GEMMA3N_KV_LAYERS)

    name = _field_value(reader, "general.name")
    return GgufSummary(
        path=path,
        file_name=path.name,
        file_bytes=path.stat().st_size,
        architecture=arch,
        name=name if isinstance(name, str) and name else path.stem,
        quant_name=ftype_name(_field_value(reader, "general.file_type")),
        tensor_bytes=tensor_bytes,
        n_params=n_params,
        bits_per_weight=tensor_bytes * 8 / n_params,
        fields=fields,
        tensor_types=tensor_types,
    )
