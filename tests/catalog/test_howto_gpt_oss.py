"""gpt-oss at its released precision: the seeded catalog lists gpt-oss-20b and -120b at MXFP4_MOE only, the quant the
model pages recommend and their recipes pull, and the quality column says MXFP4 is the original precision.

Facts written out by hand, not read back from the code:
- OpenAI released gpt-oss with its MoE weights in MXFP4 (https://huggingface.co/openai/gpt-oss-120b model card;
  arXiv:2508.10925); ggml-org/gpt-oss-{20b,120b}-GGUF publish that one quant, in files named "mxfp4"
  (gpt-oss-20b-mxfp4.gguf; gpt-oss-120b-mxfp4-00001-of-00003.gguf, 59.02 GiB as llama-bench prints it).
- Every other published GGUF of gpt-oss keeps the experts at MXFP4 (bartowski/openai_gpt-oss-20b-GGUF README: "All
  quants keep the feed forward networks at mxfp4").
- Before this change the 96 GB M2 Max page recommended IQ4_XS: it ties MXFP4_MOE at 4.25 bits per weight, neither
  had a perplexity figure, and the name order put IQ4_XS first.
- gpt-oss-120b at MXFP4: about 117 B parameters x 4.25 bits is over 50 GB, the Hub's per-file limit, so its file
  is split and Ollama cannot pull it through hf.co (tests/catalog/test_howto_mutants.py cites both).
"""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command

from catalog.models import Model


@pytest.fixture
def seeded(db) -> None:
    call_command("load_seed", "--skip-gpus", stdout=StringIO())


@pytest.mark.parametrize("slug", ["gpt-oss-20b", "gpt-oss-120b"])
def test_it_lists_gpt_oss_at_its_released_mxfp4_only_with_the_quality_note(seeded, slug):
    model = Model.objects.get(slug=slug)
    [quant] = model.quantizations.all()
    assert quant.name == "MXFP4_MOE"
    assert quant.perplexity_delta is None  # no measured figure: a note, not a number
    assert quant.quality_source.startswith("Original precision: OpenAI released")
    assert f"https://huggingface.co/openai/{slug}" in quant.quality_source


def test_the_96_gb_mac_page_recommends_mxfp4_for_gpt_oss_120b(client, seeded):
    response = client.get("/models/gpt-oss-120b/", {"hardware": "apple-m2-max-96gb"})
    assert response.status_code == 200
    assert 'data-recommended="MXFP4_MOE"' in response.text
    assert "IQ4_XS" not in response.text
    # The quality column names the released precision, the citation in its title.
    note = r'<span class="quality-note" title="Original precision: [^"]+">Original precision: …</span>'
    assert re.search(note, response.text)


def test_the_recipes_pull_the_mxfp4_file_by_default(client, seeded):
    # No device, no quant asked: the page's quant is MXFP4_MOE, asked for by the files' label MXFP4.
    big = client.get("/models/gpt-oss-120b/").text
    assert "llama-cli -hf ggml-org/gpt-oss-120b-GGUF:MXFP4 -c 4096 -ngl 99" in big
    assert "Q4_K_M" not in big
    # Over 50 GB: split on the Hub, so Ollama gets its library tag and the page says why.
    assert "ollama pull gpt-oss:120b" in big
    assert "No Ollama tag for MXFP4_MOE: the MXFP4_MOE file is over 50 GB" in big
    small = client.get("/models/gpt-oss-20b/").text
    assert "ollama pull hf.co/ggml-org/gpt-oss-20b-GGUF:MXFP4" in small
    assert "llama-cli -hf ggml-org/gpt-oss-20b-GGUF:MXFP4 -c 4096 -ngl 99" in small
