"""Nemotron-H 8B read from its config.json and sized by the fit engine, against llama.cpp's own allocation report.

Config: the Nemotron-H 8B config.json copied in NVIDIA-NeMo/Megatron-Bridge
tests/unit_tests/models/nemotronh/test_nemotron_h_bridge.py (nemotronh_8b_config_dict, commit 03c781b8). Its
hybrid_override_pattern names each of the 52 layers: 24 Mamba-2 mixers (M), 4 attention layers (*), 24 MLPs alone (-).
Fixture: tests/fixtures/llamacpp_arch/nemotron-h-8b.json, a sparse GGUF of that shape loaded by llama.cpp 0c1e57098
(llama-cpp-python 0.3.36, CPU; bench/validate_fit_gemma3n.py, provenance in the file).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalog import fit
from catalog.importers import ConfigError, model_fields_from_hf_config

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "llamacpp_arch" / "nemotron-h-8b.json"
MIB = 1024**2
RUNS = json.loads(FIXTURE.read_text())["runs"]
PATTERN = "M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M-"
CONFIG = {
    "model_type": "nemotron_h",
    "hidden_size": 4096,
    "intermediate_size": 21504,
    "num_hidden_layers": 52,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "attention_head_dim": 128,
    "hybrid_override_pattern": PATTERN,
    "mamba_num_heads": 128,
    "mamba_head_dim": 64,
    "n_groups": 8,
    "ssm_state_size": 128,
    "conv_kernel": 4,
    "max_position_embeddings": 8192,
    "vocab_size": 131072,
    "tie_word_embeddings": False,
}


def shape() -> fit.ModelShape:
    fields = model_fields_from_hf_config(CONFIG)
    return fit.ModelShape(**{k: v for k, v in fields.items() if k in fit.ModelShape.__dataclass_fields__})


def test_it_reads_the_layer_kinds_from_the_pattern():
    fields = model_fields_from_hf_config(CONFIG)
    assert fields["attention_layers"] == [7, 18, 29, 40]
    assert fields["recurrent_layers"] == [i for i, kind in enumerate(PATTERN) if kind == "M"]
    assert len(fields["recurrent_layers"]) == 24
    # Mamba-2 state (llama.cpp n_embd_r + n_embd_s): (4 - 1) x (128 x 64 + 2 x 8 x 128) + 128 x 128 x 64 =
    # 30,720 + 1,048,576 = 1,079,296 F32 values per layer and sequence.
    assert fields["recurrent_state_values"] == 1_079_296
    # Parameters by layer kind: Mamba 4096 x (2 x 8192 + 2048 + 128) + 10,240 x 4 + 10,240 + 3 x 128 + 8192 +
    # 8192 x 4096 = 109,635,968; attention 2 x 4096 x 4096 + 2 x 4096 x 1024 = 41,943,040; MLP 2 x 4096 x 21,504 =
    # 176,160,768; each layer a norm of 4096; untied embeddings 2 x 131,072 x 4096; a final norm:
    # 24 x 109,635,968 + 4 x 41,943,040 + 24 x 176,160,768 + 52 x 4096 + 1,073,741,824 + 4096 = 8,100,852,736.
    assert fields["n_params"] == 8_100_852_736


@pytest.mark.parametrize(
    "run", RUNS, ids=lambda r: f"ctx{r['n_ctx']}-fa{int(r['flash_attn'])}-seq{r['n_seq']}-{r['kv_type']}"
)
def test_it_sizes_nemotron_h_as_llama_cpp_allocates_it(run):
    s = shape()
    assert fit.kv_cache_bytes(s, run["n_ctx"], run["kv_type"], run["n_seq"]) == round(run["kv_buffer_mib"] * MIB)
    # Printed to 2 decimals of a MiB: 24 x 1,079,296 x 4 bytes = 103,612,416 bytes = 98.81 MiB per sequence.
    assert fit.recurrent_state_bytes(s, run["n_seq"]) / MIB == pytest.approx(run["rs_buffer_mib"], abs=0.01)
    options = fit.FitOptions(
        ctx=run["n_ctx"], users=run["n_seq"], kv_type=run["kv_type"], flash_attention=run["flash_attn"]
    )
    assert abs(fit.compute_bytes(s, options, "cpu") / (run["compute_buffer_mib"] * MIB) - 1) < 0.05


@pytest.mark.parametrize("pattern", ["M*-" * 17, PATTERN.replace("*", "A"), None])
def test_it_rejects_a_pattern_that_does_not_name_every_layer(pattern):
    with pytest.raises(ConfigError, match="hybrid_override_pattern"):
        model_fields_from_hf_config({**CONFIG, "hybrid_override_pattern": pattern})
