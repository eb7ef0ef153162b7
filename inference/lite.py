"""The int8 Gemma 3 model as one safetensors file, loaded without transformers (about 120 MB less resident memory).

The native decode step (native.cpp) and the eager prefill in fastpath.py need only tensors and a few config values,
not transformers' modules. The first start writes `rigfit-native-v1.safetensors` next to the converted model (from
the int8 pickle, which still needs transformers once); later starts read it with the `safetensors` package and build
a small object with the attribute layout fastpath.py reads (`model.model.layers[i].self_attn.q_proj`, ...), with
q/k/v and gate/up already fused into one matrix each, so no weight is copied at load time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

LITE_VERSION = 2  # 2: the output head's 4-bit screening copy (kernels.quantize_q4_screen)
_NORMS = ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm")


def lite_path(model_dir: Path) -> Path:
    return model_dir / f"rigfit-native-v{LITE_VERSION}.safetensors"


def remove_older_versions(model_dir: Path) -> list[Path]:
    """Delete the lite files an earlier release wrote (hundreds of MB each); returns what was removed."""
    removed = []
    for old in model_dir.glob("rigfit-native-v*.safetensors"):
        if old != lite_path(model_dir):
            old.unlink(missing_ok=True)
            removed.append(old)
    return removed


def eligible(model_dir: Path) -> bool:
    """A Gemma 3 text model (the one architecture the lean step implements)."""
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        config.get("model_type") == "gemma3_text"
        and not config.get("attn_logit_softcapping")
        and not config.get("final_logit_softcapping")
        and bool(config.get("tie_word_embeddings", True))
    )


def write(model: Any, path: Path) -> None:
    """Save an int8 Gemma 3 model (kernels.quantize_model's output) as the lite file."""
    import torch
    from safetensors.torch import save_file

    from inference.kernels import SCREEN_BLOCK, quantize_q4_screen

    inner = model.model
    tensors: dict[str, torch.Tensor] = {
        "embed.weight": inner.embed_tokens.weight,
        "embed.scale": inner.embed_tokens.scale,
        "norm.weight": inner.norm.weight.detach().float(),
    }
    for i, layer in enumerate(inner.layers):
        attn, mlp = layer.self_attn, layer.mlp
        p = f"layers.{i}."
        for name in _NORMS:
            tensors[p + name] = getattr(layer, name).weight.detach().float()
        tensors[p + "q_norm"] = attn.q_norm.weight.detach().float()
        tensors[p + "k_norm"] = attn.k_norm.weight.detach().float()
        tensors[p + "qkv.weight"] = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
        tensors[p + "qkv.scale"] = torch.cat([attn.q_proj.scale, attn.k_proj.scale, attn.v_proj.scale])
        tensors[p + "o.weight"], tensors[p + "o.scale"] = attn.o_proj.weight, attn.o_proj.scale
        tensors[p + "gate_up.weight"] = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])
        tensors[p + "gate_up.scale"] = torch.cat([mlp.gate_proj.scale, mlp.up_proj.scale])
        tensors[p + "down.weight"], tensors[p + "down.scale"] = mlp.down_proj.weight, mlp.down_proj.scale
    if inner.embed_tokens.weight.shape[1] % (2 * SCREEN_BLOCK) == 0:
        codes, scales = quantize_q4_screen(inner.embed_tokens.weight, inner.embed_tokens.scale)
        tensors["embed.screen_codes"], tensors["embed.screen_scales"] = codes, scales
    tensors = {name: t.detach().contiguous().clone() for name, t in tensors.items()}
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    metadata = {
        "config": json.dumps(model.config.to_dict()),
        "eos_token_id": json.dumps(eos),
        "n_params": str(int(getattr(model, "rigfit_n_params", 0))),
        "embed_scale": repr(float(inner.embed_tokens.embed_scale)),
    }
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.rename(path)


class LiteGemma:
    """What the engine, fastpath.py and the benchmark read from a model, over the lite file's tensors."""

    def __init__(self, tensors: dict[str, Any], metadata: dict[str, str]) -> None:
        from inference.kernels import Int8Embedding, Int8Linear

        config = json.loads(metadata["config"])
        self.config = SimpleNamespace(**config)
        self.generation_config = SimpleNamespace(eos_token_id=json.loads(metadata.get("eos_token_id", "null")))
        self.rigfit_n_params = int(metadata.get("n_params", "0"))
        heads, kv, hd = config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]
        inter = config["intermediate_size"]
        embed = Int8Embedding(tensors["embed.weight"], tensors["embed.scale"], float(metadata["embed_scale"]))
        layers = []
        for i in range(config["num_hidden_layers"]):
            p = f"layers.{i}."
            qkv_w, qkv_s = tensors[p + "qkv.weight"], tensors[p + "qkv.scale"]
            gu_w, gu_s = tensors[p + "gate_up.weight"], tensors[p + "gate_up.scale"]
            qkv_sizes = [heads * hd, kv * hd, kv * hd]
            q, k, v = (Int8Linear(w, s) for w, s in zip(qkv_w.split(qkv_sizes), qkv_s.split(qkv_sizes), strict=True))
            gate, up = (Int8Linear(w, s) for w, s in zip(gu_w.split(inter), gu_s.split(inter), strict=True))
            layer = SimpleNamespace(
                self_attn=SimpleNamespace(
                    q_proj=q,
                    k_proj=k,
                    v_proj=v,
                    o_proj=Int8Linear(tensors[p + "o.weight"], tensors[p + "o.scale"]),
                    q_norm=SimpleNamespace(weight=tensors[p + "q_norm"]),
                    k_norm=SimpleNamespace(weight=tensors[p + "k_norm"]),
                ),
                mlp=SimpleNamespace(
                    gate_proj=gate,
                    up_proj=up,
                    down_proj=Int8Linear(tensors[p + "down.weight"], tensors[p + "down.scale"]),
                ),
                rigfit_fused=((qkv_w, qkv_s, qkv_sizes), (gu_w, gu_s, [inter, inter])),
                **{name: SimpleNamespace(weight=tensors[p + name]) for name in _NORMS},
            )
            layers.append(layer)
        norm = SimpleNamespace(weight=tensors["norm.weight"])
        self.model = SimpleNamespace(embed_tokens=embed, layers=layers, norm=norm)
        self.lm_head = Int8Linear(embed.weight, embed.scale)  # tied: the same int8 table
        screen = (tensors.get("embed.screen_codes"), tensors.get("embed.screen_scales"))
        self.rigfit_head_screen = screen if all(t is not None for t in screen) else None
        self._tensors = tensors

    def eval(self) -> LiteGemma:
        return self

    def parameters(self):
        return iter(self._tensors.values())

    def state_dict(self) -> dict[str, Any]:
        return dict(self._tensors)


def load(path: Path) -> LiteGemma:
    from safetensors import safe_open
    from safetensors.torch import load_file

    from inference.kernels import mark_sparsely_read

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    model = LiteGemma(load_file(str(path)), metadata)
    if model.rigfit_head_screen is not None:
        # With the 4-bit screening copy, the int8 table (168 MB for Gemma 3) is read only for the rows recomputed at
        # each step and the tokens looked up.
        mark_sparsely_read(model.model.embed_tokens.weight, path)
    return model
