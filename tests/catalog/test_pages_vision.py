"""Model pages for vision-language models (issue 13): the download as text weights + vision encoder, VLMs compared
with VLMs, an estimated time per image per device, the published task benchmarks with their source; and on every
model page an About that does not repeat the subtitle and sources with readable names and links."""

from __future__ import annotations

import re

import pytest

from catalog import fit, speed, vision
from catalog.models import Model
from tests.factories import make_hardware, make_model, make_quantization

pytestmark = pytest.mark.django_db

# Moondream 2's text model (Phi-1.5: 24 layers, width 2048, 32 heads of 64, vocabulary 51,200, 2,048 context), with the
# catalog's 1.86B total and a 430M vision encoder (round figures for the arithmetic below).
PHI_SHAPE = {
    "n_params": 1_860_000_000,
    "n_layers": 24,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "n_heads": 32,
    "n_kv_heads": 32,
    "head_dim": 64,
    "vocab_size": 51_200,
    "tied_embeddings": False,
    "context_length": 2048,
}


def make_vlm(slug: str = "moondream-2", name: str = "Moondream 2", **overrides) -> Model:
    fields = {**PHI_SHAPE, "vision_params": 430_000_000, "image_tokens": 729, **overrides}
    return make_model(
        name=name, slug=slug, family="Moondream", source_repo="vikhyatk/moondream2", modality="vision-language",
        **fields,
    )  # fmt: skip


# --- the download ----------------------------------------------------------------------------------------------


def test_it_shows_a_vlm_download_as_text_weights_plus_the_vision_encoder(client, catalog):
    model = make_vlm()
    make_quantization(model, name="Q4_K_M", bits_per_weight=None, file_bytes=1_000_000_000)
    html = client.get("/models/moondream-2/").text
    # 1.00 GB of text weights (the published file) + 430M parameters x 2 bytes (F16 mmproj) = 0.86 GB.
    assert "1.86 GB <small>= 1.00 GB text + 0.86 GB vision encoder</small>" in html
    assert 'data-download="1860000000"' in html
    assert "<th>Download</th>" in html


def test_it_keeps_a_text_models_file_size_alone(client, catalog):
    html = client.get("/models/llama-3-1-8b/").text
    assert "<th>File size</th>" in html
    assert "vision encoder</small>" not in html


# --- models worth comparing ----------------------------------------------------------------------------------


def test_it_compares_a_vlm_with_other_vlms_nearest_in_size_first(client, catalog):
    make_vlm()
    make_vlm(slug="moondream-0-5b", name="Moondream 0.5B", n_params=569_000_000, vision_params=162_000_000)
    make_vlm(slug="smolvlm2-500m", name="SmolVLM2 500M", n_params=496_000_000, vision_params=86_000_000)
    make_vlm(slug="gemma-3-4b", name="Gemma 3 4B", n_params=4_300_000_000, vision_params=417_000_000)
    html = client.get("/models/moondream-2/").text
    section = html.split('id="cmp-h"')[1].split("</section>")[0]
    names = re.findall(r"<b>([^<]+)</b>", section)
    # |ln(4.3/1.86)| = 0.84 < |ln(0.569/1.86)| = 1.18 < |ln(0.496/1.86)| = 1.32; the text models are left out.
    assert names == ["Gemma 3 4B", "Moondream 0.5B", "SmolVLM2 500M"]


def test_it_compares_a_text_model_with_text_models(client, catalog):
    make_vlm()  # 1.86B: the band just below Llama 8B's, where a text model would be offered
    make_model(name="Text 2B", slug="text-2b", n_params=2_000_000_000)
    html = client.get("/models/llama-3-1-8b/").text
    section = html.split('id="cmp-h"')[1].split("</section>")[0]
    assert re.findall(r"<b>([^<]+)</b>", section) == ["Text 2B"]


# --- time per image ------------------------------------------------------------------------------------------


PHI_TEXT = {
    "n_layers": 24, "hidden_size": 2048, "n_heads": 32, "n_kv_heads": 32, "head_dim": 64, "vocab_size": 51_200,
    "intermediate_size": 8192,
}  # fmt: skip


def test_it_estimates_an_image_as_encoder_plus_prefill_plus_caption():
    shape = fit.ModelShape(n_params=1_860_000_000, vision_params=430_000_000, image_tokens=729, **PHI_TEXT)
    device = fit.DeviceSpec(
        name="Test GPU", kind="gpu", memory_bytes=24 * 1024**3, bandwidth_gbps=1008.0, fp16_tflops=82.6
    )
    options = fit.FitOptions(ctx=2048)
    quant = fit.QuantSpec("Q4_K_M")
    model = speed.DEFAULT_SPEED
    result = fit.fit(shape, quant, device, options, model)
    timed = vision.image_seconds(shape, quant, device, options, result, model)
    assert timed is not None
    # The speed model's own figures are the inputs; the arithmetic of the three parts is what is checked.
    f16_tps = speed.prefill_tps(shape, device, model, fit.QuantSpec("F16"), n_prompt=729)
    q4_tps = speed.prefill_tps(shape, device, model, quant, n_prompt=729, place=fit.placement_of(result))
    decode = speed.decode_tps_at(shape, quant, device, options, result, model, depth=729 + 16)
    # Encoder: the F16 prefill of 729 tokens x 430M vision / 1,430M text parameters.
    assert timed.encoder_s == pytest.approx(729 / f16_tps * 430_000_000 / 1_430_000_000)
    assert timed.prefill_s == pytest.approx(729 / q4_tps)
    assert timed.caption_s == pytest.approx(32 / decode)
    assert timed.total_s == pytest.approx(timed.encoder_s + timed.prefill_s + timed.caption_s)


def test_it_does_not_time_an_image_for_a_text_model_or_a_model_that_does_not_fit():
    options = fit.FitOptions(ctx=2048)
    quant = fit.QuantSpec("Q4_K_M")
    device = fit.DeviceSpec(name="GPU", kind="gpu", memory_bytes=8 * 1024**3, bandwidth_gbps=272.0, fp16_tflops=15.1)
    text = fit.ModelShape(n_params=1_000_000_000, **PHI_TEXT)
    result = fit.fit(text, quant, device, options)
    assert vision.image_seconds(text, quant, device, options, result, speed.DEFAULT_SPEED) is None
    vlm = fit.ModelShape(n_params=1_860_000_000, vision_params=430_000_000, image_tokens=729, **PHI_TEXT)
    tiny = fit.DeviceSpec(name="Tiny", kind="gpu", memory_bytes=256 * 1024**2, bandwidth_gbps=100.0, fp16_tflops=1.0)
    no_room = fit.FitOptions(ctx=2048, system_ram_bytes=512 * 1024**2)  # 256 MiB of VRAM, 512 MiB of RAM
    no_fit = fit.fit(vlm, quant, tiny, no_room)
    assert no_fit.verdict == fit.Verdict.DOES_NOT_FIT
    assert vision.image_seconds(vlm, quant, tiny, no_room, no_fit, speed.DEFAULT_SPEED) is None


def test_it_shows_the_time_per_image_on_the_chosen_and_the_reference_devices(client, catalog):
    model = make_vlm()
    make_quantization(model, name="Q4_K_M")
    make_hardware(name="GeForce RTX 3080", slug="nvidia-geforce-rtx-3080", memory_bytes=10 * 1024**3)
    html = client.get("/models/moondream-2/", {"hardware": "geforce-rtx-4060"}).text
    section = html.split('id="image-time"')[1].split("</section>")[0]
    assert re.findall(r'data-device="([^"]+)"', section) == ["geforce-rtx-4060", "nvidia-geforce-rtx-3080"]
    assert "(yours)" in section
    assert section.count('<small class="est">estimated</small>') == 2
    assert "Q4_K_M, one image (729 image tokens) and a 32-token caption" in section


def test_it_has_no_time_per_image_on_a_text_model_page(client, catalog):
    assert 'id="image-time"' not in client.get("/models/llama-3-1-8b/").text


def test_it_updates_the_time_per_image_with_the_settings(client, catalog):
    model = make_vlm()
    make_quantization(model, name="Q4_K_M")
    answer = client.get("/models/moondream-2/", {"hardware": "geforce-rtx-4090"}, headers={"HX-Request": "true"}).text
    assert '<section id="image-time" class="image-time" aria-labelledby="image-time-h" hx-swap-oob="true">' in answer
    assert 'data-device="geforce-rtx-4090"' in answer


# --- published task benchmarks -------------------------------------------------------------------------------


def test_it_lists_moondreams_published_task_benchmarks_with_their_source(client, catalog):
    make_vlm()
    html = client.get("/models/moondream-2/").text
    section = html.split('id="tasks-h"')[1].split("</section>")[0]
    card = "https://huggingface.co/vikhyatk/moondream2/commit/92d3d73b6fd61ab84d9fe093a9c7fd8c04bf2c0d"
    assert f'href="{card}"' in section
    row = re.search(r"<th scope=\"row\">2024-08-26</th>(.*?)</tr>", section).group(1)
    assert re.findall(r"<td>([^<]*)</td>", row) == ["80.3", "64.3", "65.2", "70.5", "82.6 / 77.6", "89.6 / 88.8 / 87.2"]
    row = re.search(r"<th scope=\"row\">2024-04-02</th>(.*?)</tr>", section).group(1)
    assert re.findall(r"<td>([^<]*)</td>", row)[-1] == "–"  # the card printed no POPE figure for that release


def test_it_refuses_a_task_table_without_a_source(tmp_path):
    path = tmp_path / "scores.toml"
    path.write_text(
        '[[tables]]\nmodel = "x"\nsource = "somewhere"\ncolumns = ["A"]\n'
        '[[tables.releases]]\nrelease = "1"\nscores = { "A" = "1.0" }\n'
    )
    with pytest.raises(ValueError, match="source URL"):
        vision.task_scores("x", path)


def test_it_shows_no_task_table_for_a_vlm_without_published_figures_on_file(client, catalog):
    make_vlm(slug="smolvlm2-500m", name="SmolVLM2 500M")
    assert 'id="tasks-h"' not in client.get("/models/smolvlm2-500m/").text


# --- about and sources ---------------------------------------------------------------------------------------


def test_it_does_not_repeat_the_subtitle_in_about(client, catalog):
    Model.objects.filter(slug="llama-3-1-8b").update(
        description="Meta's 8B instruction model. It handles 128K tokens of context."
    )
    html = client.get("/models/llama-3-1-8b/").text
    assert html.count("Meta&#x27;s 8B instruction model.") == 1
    assert '<p class="lede">Meta&#x27;s 8B instruction model.</p>' in html
    about = html.split('id="about-h"')[1].split("</section>")[0]
    assert "<p>It handles 128K tokens of context.</p>" in about


def test_it_names_the_figures_in_readable_words_links_urls_and_prints_each_source_once(client, catalog):
    config = "The model's config.json, https://example.org/config.json (dim 2048, 24 layers, 32 heads, vocab 51200)"
    Model.objects.filter(slug="llama-3-1-8b").update(
        sources={
            "n_layers": config,
            "n_kv_heads": config,
            "vision_params": f"computed from the shape in {config}",
            "n_params": "the README: https://example.org/README.md",
        }
    )
    html = client.get("/models/llama-3-1-8b/").text
    section = html.split('id="src-h"')[1].split("</section>")[0]
    # PostgreSQL's jsonb orders keys its own way, so the rows are compared as a set.
    labels = sorted(re.findall(r"<dt>([^<]+)</dt>", section))
    assert labels == sorted(["Layers, KV heads", "Vision encoder parameters", "Parameters"])
    assert "n_params" not in section and "vision_params" not in section and "n_kv_heads" not in section
    assert section.count("(dim 2048, 24 layers, 32 heads, vocab 51200)") == 1
    assert "computed from the shape in the source of layers, kv heads above" in section
    assert '<a href="https://example.org/config.json" rel="nofollow">https://example.org/config.json</a>' in section
    assert '<a href="https://example.org/README.md" rel="nofollow">https://example.org/README.md</a>' in section
