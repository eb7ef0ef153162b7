"""Which layers hold routed experts, as the importers read them: llama.cpp's --n-cpu-moe moves only those layers'
expert tensors (blk.<i>.ffn_(up|down|gate|gate_up)_(ch|)exps, common/common.h), so a MoE whose dense and MoE layers
alternate (Llama 4 Maverick) or that starts with dense layers (DeepSeek V2/V3, Kimi K2) says which they are.

Expected layer lists follow llama.cpp's own rules (0c1e57098): src/models/llama4.cpp `is_moe_layer = (i + 1) %
n_moe_layer_step == 0`; src/models/deepseek2.cpp `i < n_layer_dense_lead` is dense.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from catalog import fit
from catalog.importers import model_fields_from_gguf, model_fields_from_hf_config, moe_layer_indices
from tests.catalog.test_importers import DEEPSEEK_V2_LITE, MIXTRAL_8X7B, QWEN3_30B_A3B
from tests.catalog.test_importers_moe_layouts import _llama4


def test_maverick_routes_on_its_odd_layers_only():
    fields = model_fields_from_hf_config(_llama4(128, 2, 1048576))
    assert fields["moe_layers"] == list(range(1, 48, 2))  # (i + 1) % 2 == 0: layers 1, 3, ..., 47
    assert len(fields["moe_layers"]) == 24


def test_deepseek_starts_with_its_dense_layers():
    fields = model_fields_from_hf_config(DEEPSEEK_V2_LITE)  # first_k_dense_replace 1 of 27 layers
    assert fields["moe_layers"] == list(range(1, 27))
    v3 = moe_layer_indices(61, first_k_dense=3)  # DeepSeek-V3 / R1: 3 dense layers of 61
    assert (v3[0], v3[-1], len(v3)) == (3, 60, 58)


@pytest.mark.parametrize(
    "config", [_llama4(16, 1, 10485760), QWEN3_30B_A3B, MIXTRAL_8X7B], ids=["scout", "qwen3", "mixtral"]
)
def test_a_moe_that_routes_on_every_layer_leaves_the_list_out(config):
    assert "moe_layers" not in model_fields_from_hf_config(config)


def test_the_shape_takes_the_list_and_places_the_experts_by_it():
    fields = model_fields_from_hf_config(_llama4(128, 2, 1048576))
    names = fit.ModelShape.__dataclass_fields__
    shape = fit.ModelShape(**{k: v for k, v in fields.items() if k in names})
    assert fit.moe_layer_indices(shape) == tuple(range(1, 48, 2))


def _write_moe_gguf(path: Path, expert_layers: set[int], n_layers: int = 4) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(n_layers)
    writer.add_context_length(256)
    writer.add_embedding_length(64)
    writer.add_feed_forward_length(128)
    writer.add_expert_feed_forward_length(32)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_expert_count(4)
    writer.add_expert_used_count(2)
    writer.add_token_list([f"t{i}" for i in range(100)])
    shapes: dict[str, tuple[int, ...]] = {"token_embd.weight": (100, 64), "output.weight": (100, 64)}
    for il in range(n_layers):
        shapes[f"blk.{il}.attn_q.weight"] = (64, 64)
        if il in expert_layers:
            shapes |= {f"blk.{il}.ffn_{k}_exps.weight": (4, 32, 64) for k in ("gate", "up")}
            shapes[f"blk.{il}.ffn_down_exps.weight"] = (4, 64, 32)
            shapes[f"blk.{il}.ffn_gate_inp.weight"] = (4, 64)
        else:
            shapes |= {f"blk.{il}.ffn_{k}.weight": (128, 64) for k in ("gate", "up")}
    for name, shape in shapes.items():
        writer.add_tensor(name, np.zeros(shape, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_gguf_names_its_expert_layers_in_the_tensor_table(tmp_path: Path):
    # The layers with ffn_*_exps tensors are the ones the pattern matches: here 1 and 3 of 4.
    summary = model_fields_from_gguf(_write_moe_gguf(tmp_path / "alt.gguf", {1, 3}))
    assert summary.fields["moe_layers"] == [1, 3]
    every = model_fields_from_gguf(_write_moe_gguf(tmp_path / "all.gguf", {0, 1, 2, 3}))
    assert "moe_layers" not in every.fields


@pytest.mark.django_db
def test_the_seeded_maverick_and_deepseek_carry_their_moe_layers():
    from django.core.management import call_command

    from catalog.models import Model

    call_command("load_seed", verbosity=0)

    maverick = Model.all_objects.get(slug="llama-4-maverick")  # interleave_moe_layer_step = 2 in its config
    assert maverick.moe_layers == list(range(1, 48, 2))
    deepseek = Model.all_objects.get(slug="deepseek-v3")  # first_k_dense_replace = 3 of 61 layers
    assert deepseek.moe_layers == list(range(3, 61))
    assert Model.all_objects.get(slug="llama-4-scout").moe_layers is None  # every layer routes
