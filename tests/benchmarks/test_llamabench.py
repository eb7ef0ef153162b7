from __future__ import annotations

import json

import pytest

from benchmarks import llamabench
from tests.benchmarks.conftest import read_fixture


def test_it_reads_every_test_of_real_json_output():
    records = llamabench.parse(read_fixture("gemma3-270m-q4_k_m-cpu.json"))
    assert [(r["n_prompt"], r["n_gen"]) for r in records] == [(512, 0), (0, 128)]
    assert all(len(r["samples_ts"]) == 3 for r in records)


def test_it_reads_every_test_of_real_jsonl_output():
    records = llamabench.parse(read_fixture("gemma3-270m-q4_k_m-cpu.jsonl"))
    assert [(r["n_prompt"], r["n_gen"]) for r in records] == [(512, 0), (0, 128)]


def test_it_recognises_the_model_file_from_the_record():
    record = llamabench.parse(read_fixture("gemma3-270m-q4_k_m-cpu.json"))[0]
    ident = llamabench.identity(record)
    assert ident.filename == "gemma-3-270m-q4_k_m.gguf"
    assert ident.n_params == 268_098_176
    assert ident.quant == "Q4_K_M"
    assert llamabench.backend_from(record) == "cpu"


def test_it_falls_back_to_the_ftype_in_model_type():
    assert llamabench.quant_from({"model_filename": "model.gguf", "model_type": "llama 8B Q5_K - Small"}) == "Q5_K_S"
    assert llamabench.quant_from({"model_filename": "x.gguf", "model_type": "llama 8B mystery"}) is None


def test_it_maps_backends_and_flash_attention_modes():
    assert llamabench.backend_from({"backends": "Metal,BLAS"}) == "metal"
    assert llamabench.backend_from({"backends": "CUDA"}) == "cuda"
    data = llamabench.form_data({"n_prompt": 0, "n_gen": 1, "avg_ts": 1.0, "flash_attn": -1, "n_gpu_layers": -1})
    assert data["flash_attn"] is None and "n_gpu_layers" not in data
    assert llamabench.form_data({"flash_attn": 1, "avg_ts": 1})["flash_attn"] is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("not json at all", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('[{"n_prompt": 512}]', "lacks n_gen, avg_ts"),
        ('{"a": 1}', "lacks"),
        ("[]", "no tests"),
    ],
)
def test_it_explains_what_is_wrong_with_bad_output(text, message):
    with pytest.raises(llamabench.LlamaBenchError, match=message):
        llamabench.parse(text)


def test_it_caps_the_size():
    huge = json.dumps([{"n_prompt": 1, "n_gen": 0, "avg_ts": 1.0, "pad": "x" * llamabench.MAX_OUTPUT_BYTES}])
    with pytest.raises(llamabench.LlamaBenchError, match="larger than"):
        llamabench.parse(huge)
