"""The seed file catalog/seed/models/catalog-a.toml (Qwen, DeepSeek, Kimi, GLM, Llama, Mistral additions for issue 15).

Loaded on its own (with the quant ladder and hardware it needs), so these checks do not depend on the other seed files.
Expected figures are the publishers' own, quoted where each test uses them.
"""

from __future__ import annotations

import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from catalog.management.commands.load_seed import SEED_DIR
from catalog.models import Modality, Model

CATALOG_A = SEED_DIR / "models" / "catalog-a.toml"


@pytest.fixture
def catalog_a(db, tmp_path: Path) -> dict[str, Model]:
    seed = tmp_path / "seed"
    (seed / "models").mkdir(parents=True)
    shutil.copy(SEED_DIR / "quant_ladder.toml", seed)
    shutil.copy(SEED_DIR / "hardware.toml", seed)
    shutil.copy(CATALOG_A, seed / "models")
    call_command("load_seed", "--seed-dir", str(seed), "--skip-gpus", stdout=StringIO())
    return {m.slug: m for m in Model.objects.all()}


# (slug, published total, published active or None): each from the model's own card or README, as cited in the seed.
PUBLISHED = [
    ("deepseek-v3", 671e9, 37e9),  # DeepSeek-V3 README: '671B total parameters with 37B activated for each token'
    ("deepseek-r1", 671e9, 37e9),  # DeepSeek-R1 card: 671B total, 37B activated (its V3 base)
    ("kimi-k2-instruct", 1e12, 32e9),  # Kimi K2 card: '1 trillion total parameters', '32 billion activated'
    ("qwen3-235b-a22b-instruct-2507", 235e9, 22e9),  # card: '235B in total and 22B activated'
    ("qwen3-30b-a3b-instruct-2507", 30.5e9, 3.3e9),  # card: '30.5B in total and 3.3B activated'
    ("qwen3-coder-30b-a3b", 30.5e9, 3.3e9),  # card: '30.5B in total and 3.3B activated'
    ("qwen3-next-80b-a3b-instruct", 80e9, None),  # card: '80B in total and 3B activated' (the estimate: 3.19B)
    ("glm-4-5", 355e9, 32e9),  # GLM-4.5 README: '355 billion total parameters with 32 billion active'
    ("glm-4-5-air", 106e9, None),  # GLM-4.5 README: '106 billion total parameters and 12 billion active' (see below)
    ("qwq-32b", 32.5e9, None),  # QwQ-32B card: 'Number of Parameters: 32.5B'
    ("qwen2-5-coder-7b", 7.61e9, None),  # Qwen2.5-Coder-7B-Instruct card: 'Number of Parameters: 7.61B'
    ("qwen2-5-coder-14b", 14.7e9, None),  # Qwen2.5-Coder-14B-Instruct card: 'Number of Parameters: 14.7B'
    ("llama-4-scout", 109e9, 17e9),  # Llama 4 model card: '17B (Activated) 109B (Total)'
    ("llama-4-maverick", 400e9, 17e9),  # Llama 4 model card: '17B (Activated) 400B (Total)'
]


@pytest.mark.parametrize(("slug", "total", "active"), PUBLISHED)
def test_it_sizes_each_model_within_five_percent_of_its_published_count(catalog_a, slug, total, active):
    model = catalog_a[slug]
    assert abs(model.n_params - total) / total < 0.05, f"{slug}: {model.n_params:,} vs {total:,.0f}"
    if active is not None:
        assert abs(model.n_active_params - active) / active < 0.05, f"{slug}: {model.n_active_params:,}"


def test_it_counts_the_embeddings_in_glm_4_5_airs_active_share(catalog_a):
    # The published '12 billion active' leaves out the token embedding and output matrices, which the shape estimate
    # counts: vocabulary x hidden x 2 = 151552 x 4096 x 2 = 1,241,513,984. Without them it lands within 5 % of 12B.
    air = catalog_a["glm-4-5-air"]
    assert abs(air.n_active_params - 1_241_513_984 - 12e9) / 12e9 < 0.05


def test_it_reads_the_architectures_the_cards_describe(catalog_a):
    # Qwen3-Next card: 'Hybrid Layout: 12 * (3 * (Gated DeltaNet -> MoE) -> (Gated Attention -> MoE))'.
    nxt = catalog_a["qwen3-next-80b-a3b-instruct"]
    assert nxt.attention_layers == [4 * block + 3 for block in range(12)]
    assert len(nxt.recurrent_layers) == 36 and nxt.recurrent_state_values
    # Llama 4: chunked attention (8,192-token chunks) on 3 of every 4 layers, sized as a sliding window.
    scout = catalog_a["llama-4-scout"]
    assert (scout.sliding_window, len(scout.swa_layers)) == (8192, 36)
    # DeepSeek-V3 / Kimi K2: MLA with a 512-value latent and a 64-dimensional rotary part.
    for slug in ("deepseek-v3", "deepseek-r1-0528", "kimi-k2-thinking"):
        model = catalog_a[slug]
        assert (model.kv_lora_rank, model.qk_rope_head_dim) == (512, 64), slug
    # Mistral Small 3.1 reads images; Devstral is the same text model without the vision layer.
    small, devstral = catalog_a["mistral-small-3-1-24b"], catalog_a["devstral-small-2505"]
    assert small.modality == Modality.VISION and small.vision_params
    assert devstral.modality == Modality.TEXT and devstral.n_params == small.n_params - small.vision_params


def test_it_cites_every_model_to_a_pinned_public_copy(catalog_a):
    for model in catalog_a.values():
        citation = model.sources["n_layers"]
        assert "github.com/" in citation and "/blob/" in citation, model.slug
