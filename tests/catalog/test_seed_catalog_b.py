"""Seed catalog B (catalog/seed/models/catalog-b.toml): every model cited to a pinned public mirror of its config.json,
Gemma 3n's KV shared across layers, the vision encoders' image tokens, and shapes that give the published sizes.

Expected values are hand calculations written out beside each assertion (llama.cpp's allocation formulas as in
tests/catalog/test_fit_architectures.py) or figures printed in the cited sources.
"""

from __future__ import annotations

import datetime
import re
import tomllib
from io import StringIO

import pytest
from django.core.management import call_command

from catalog import fit, services
from catalog.management.commands.load_seed import SEED_DIR
from catalog.models import Model

CATALOG_B = SEED_DIR / "models" / "catalog-b.toml"
MIB = 1024**2


def _entries() -> list[dict[str, object]]:
    return tomllib.loads(CATALOG_B.read_text())["models"]


@pytest.fixture
def seeded(db) -> None:
    call_command("load_seed", "--skip-gpus", stdout=StringIO())


def test_it_cites_every_config_to_a_pinned_mirror():
    entries = _entries()
    assert len(entries) >= 35
    pinned = re.compile(r"github\.com/[\w.-]+/[\w.-]+/blob/([0-9a-f]{40}|v\d+\.\d+\.\d+)/")
    for entry in entries:
        assert pinned.search(str(entry["config_source"])), entry["slug"]
        assert "config" in entry, entry["slug"]


def test_it_adds_no_slug_another_seed_file_has():
    ours = {entry["slug"] for entry in _entries()}
    others = {
        str(entry["slug"])
        for path in sorted((SEED_DIR / "models").glob("*.toml"))
        if path != CATALOG_B
        for entry in tomllib.loads(path.read_text()).get("models", [])
    }
    assert not ours & others


def test_it_keeps_kv_on_gemma_3n_first_20_layers_only(seeded):
    e4b = services.shape_of(Model.objects.get(slug="gemma-3n-e4b"))
    assert e4b.n_layers == 35
    assert [fit.layer_kv_heads(e4b, il) for il in (0, 19, 20, 34)] == [2, 2, 0, 0]
    # F16 KV at a 4096-token context, one sequence (llama.cpp: n_layer_kv_from_start = 20). Per cell and layer:
    # K + V = 2 x 2 heads x 256 x 2 bytes = 2,048 bytes. Layers 0-19 follow the 4-sliding-1-full pattern: 16 sliding
    # layers of min(4096, 512 + 512) = 1,024 cells and 4 full layers of 4,096 cells:
    # 16 x 1,024 x 2,048 + 4 x 4,096 x 2,048 = 33,554,432 + 33,554,432 = 67,108,864 bytes (64 MiB).
    assert fit.kv_cache_bytes(e4b, 4096) == 64 * MIB
    # Without the sharing all 35 layers would keep KV: 28 sliding + 7 full =
    # 28 x 1,024 x 2,048 + 7 x 4,096 x 2,048 = 58,720,256 + 58,720,256 = 117,440,512 bytes (112 MiB).
    unshared = fit.ModelShape(**{**_shape_fields(e4b), "kv_heads_per_layer": ()})
    assert fit.kv_cache_bytes(unshared, 4096) == 112 * MIB


def test_it_sizes_gemma_3n_e2b_as_its_published_text_model(seeded):
    e2b = Model.objects.get(slug="gemma-3n-e2b")
    # The E2B text decoder holds 4.46B parameters (maceip/gemma3n-executorch e2b/README_HF.md: "text parameters
    # 4.46b"), 2,013,265,920 of them the per-layer embeddings (256 x 30 layers x 262,144 tokens).
    assert round(e2b.n_params / 1e7) == 446
    assert e2b.kv_heads_per_layer == [2] * 20 + [0] * 10
    assert e2b.sources["kv_heads_per_layer"].startswith("llama.cpp sets hparams.n_layer_kv_from_start = 20")


def test_it_gives_the_vision_models_their_encoders_and_image_tokens(seeded):
    pali = Model.objects.get(slug="paligemma-3b-448")
    assert pali.image_tokens == (448 // 14) ** 2 == 1024
    # SigLIP-So400m at 448 px, as catalog.importers counts a ViT: patch embedding 3 x 14 x 14 x 1152 + 1152 = 678,528;
    # positions 1,024 x 1152 = 1,179,648; 27 blocks of 4 x (1152^2 + 1152) + (1152 x 4304 + 4304) + (4304 x 1152 +
    # 1152) + 4 x 1152 = 15,239,504; final norm 2 x 1152 = 2,304: 678,528 + 1,179,648 + 411,466,608 + 2,304.
    assert pali.vision_params == 413_327_088
    phi = Model.objects.get(slug="phi-3-5-vision")
    assert phi.image_tokens == 144
    assert 0.30e9 < phi.vision_params < 0.31e9  # CLIP ViT-L/14 at 336 px


def test_it_keeps_a_flat_state_for_the_hybrid_layers(seeded):
    granite = services.shape_of(Model.objects.get(slug="granite-4-0-h-350m"))
    assert sorted(granite.attention_layers) == [10, 13, 17, 27]
    # Mamba-2 state per layer and sequence (llama.cpp src/llama-hparams.cpp): n_embd_r = (d_conv - 1) x (d_inner +
    # 2 x n_group x d_state) = 3 x (1536 + 2 x 1 x 128) = 5,376 and n_embd_s = d_state x d_inner = 128 x 1536 =
    # 196,608 F32 values: 28 Mamba layers x 201,984 x 4 bytes = 22,622,208 bytes, whatever the context.
    assert fit.recurrent_state_bytes(granite) == 22_622_208
    # KV only on the 4 attention layers: 4 x 4,096 cells x 2 x 4 KV heads x 64 x 2 bytes = 16,777,216 bytes (16 MiB).
    assert fit.kv_cache_bytes(granite, 4096) == 16 * MIB
    lfm2 = services.shape_of(Model.objects.get(slug="lfm2-1-2b"))
    # Short convolutions keep n_embd x (L_cache - 1) = 2048 x 2 = 4,096 values: 10 layers x 4,096 x 4 bytes.
    assert fit.recurrent_state_bytes(lfm2) == 163_840
    # 6 attention layers x 4,096 cells x 2 x 8 KV heads x 64 x 2 bytes = 50,331,648 bytes (48 MiB).
    assert fit.kv_cache_bytes(lfm2, 4096) == 48 * MIB


def test_it_dates_the_releases_it_can_cite(seeded):
    # The OLMoE and LFM2 pages of transformers' model docs: "This model was released on 2024-09-03" / "2025-07-10".
    olmoe, lfm2 = Model.objects.get(slug="olmoe-1b-7b"), Model.objects.get(slug="lfm2-1-2b")
    assert (olmoe.released, lfm2.released) == (datetime.date(2024, 9, 3), datetime.date(2025, 7, 10))
    assert "olmoe.md" in olmoe.sources["released"] and "lfm2.md" in lfm2.sources["released"]


def _shape_fields(shape: fit.ModelShape) -> dict[str, object]:
    return {name: getattr(shape, name) for name in fit.ModelShape.__dataclass_fields__}
