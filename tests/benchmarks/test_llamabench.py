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


# --- the mapping, field by field (issue 14: each expected value from llama.cpp's own text, not from llamabench.py) ---

# llama.cpp src/llama-model-loader.cpp, llama_ftype_name() (the copy vendored in llama-cpp-python 0.3.36): the text
# llama-bench prints at the end of model_type, beside the LLAMA_FTYPE_* enum it names. Our quant name is the enum's
# suffix after MOSTLY_ (ALL_F32 -> F32, MXFP4_MOE -> MXFP4).
LLAMA_FTYPE_NAME = [
    ("all F32", "ALL_F32"),
    ("F16", "MOSTLY_F16"),
    ("BF16", "MOSTLY_BF16"),
    ("Q4_0", "MOSTLY_Q4_0"),
    ("Q4_1", "MOSTLY_Q4_1"),
    ("Q5_0", "MOSTLY_Q5_0"),
    ("Q5_1", "MOSTLY_Q5_1"),
    ("Q8_0", "MOSTLY_Q8_0"),
    ("MXFP4 MoE", "MOSTLY_MXFP4_MOE"),
    ("Q2_K - Medium", "MOSTLY_Q2_K"),
    ("Q2_K - Small", "MOSTLY_Q2_K_S"),
    ("Q3_K - Small", "MOSTLY_Q3_K_S"),
    ("Q3_K - Medium", "MOSTLY_Q3_K_M"),
    ("Q3_K - Large", "MOSTLY_Q3_K_L"),
    ("Q4_K - Small", "MOSTLY_Q4_K_S"),
    ("Q4_K - Medium", "MOSTLY_Q4_K_M"),
    ("Q5_K - Small", "MOSTLY_Q5_K_S"),
    ("Q5_K - Medium", "MOSTLY_Q5_K_M"),
    ("Q6_K", "MOSTLY_Q6_K"),
    ("IQ2_XXS - 2.0625 bpw", "MOSTLY_IQ2_XXS"),
    ("IQ2_XS - 2.3125 bpw", "MOSTLY_IQ2_XS"),
    ("IQ2_S - 2.5 bpw", "MOSTLY_IQ2_S"),
    ("IQ2_M - 2.7 bpw", "MOSTLY_IQ2_M"),
    ("IQ3_XS - 3.3 bpw", "MOSTLY_IQ3_XS"),
    ("IQ3_XXS - 3.0625 bpw", "MOSTLY_IQ3_XXS"),
    ("IQ1_S - 1.5625 bpw", "MOSTLY_IQ1_S"),
    ("IQ1_M - 1.75 bpw", "MOSTLY_IQ1_M"),
    ("IQ4_NL - 4.5 bpw", "MOSTLY_IQ4_NL"),
    ("IQ4_XS - 4.25 bpw", "MOSTLY_IQ4_XS"),
    ("IQ3_S - 3.4375 bpw", "MOSTLY_IQ3_S"),
    ("IQ3_S mix - 3.66 bpw", "MOSTLY_IQ3_M"),
]


@pytest.mark.parametrize(("printed", "enum"), LLAMA_FTYPE_NAME)
def test_it_reads_every_ftype_llama_cpp_prints(printed, enum):
    expected = enum.removeprefix("MOSTLY_").removeprefix("ALL_").removesuffix("_MOE")
    record = {"model_filename": "/models/model.gguf", "model_type": f"llama 8B {printed}"}
    assert llamabench.quant_from(record) == expected
    assert llamabench.identity(record).quant == expected


def test_it_reads_the_ftype_only_as_the_last_word_of_model_type():
    assert llamabench.quant_from({"model_type": "llama 8B Q4_K - Medium (extra)"}) is None
    assert llamabench.quant_from({"model_type": "Q4_K - Medium"}) is None  # no architecture and size before it
    assert llamabench.quant_from({}) is None


@pytest.mark.parametrize(
    ("filename", "quant"),
    [
        # Hugging Face GGUF repositories' usual file names (bartowski, unsloth, ggml-org, lmstudio-community).
        ("Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("/root/.cache/gemma-3-270m-it-q8_0.gguf", "Q8_0"),
        ("Qwen3-30B-A3B-UD-IQ2_XXS.gguf", "IQ2_XXS"),
        ("gpt-oss-20b-MXFP4.gguf", "MXFP4"),
        ("Mistral-7B-Instruct-v0.3.BF16.gguf", "BF16"),
        ("phi-4-IQ4_NL.gguf", "IQ4_NL"),
        ("model-Q4_K.gguf", "Q4_K"),
        ("C:\\models\\Q8_0\\llama-Q5_K_S.gguf", "Q5_K_S"),  # a Windows path: the file name, not the folder
        ("/models/Q8_0/llama-f16.gguf", "F16"),
        ("llama-Q8_0-then-Q4_0.gguf", "Q4_0"),  # the last one named
    ],
)
def test_it_reads_the_quant_from_the_file_name_first(filename, quant):
    # model_type names another ftype: the file name wins where it names one.
    assert llamabench.quant_from({"model_filename": filename, "model_type": "llama 8B Q6_K"}) == quant


def test_it_reads_no_quant_from_letters_glued_to_one():
    assert llamabench.quant_from({"model_filename": "XQ4_0.gguf"}) is None
    assert llamabench.quant_from({"model_filename": "Q4_0x.gguf"}) is None
    assert llamabench.quant_from({"model_filename": "Q9_0.gguf"}) is None


def test_it_keeps_only_positive_whole_numbers_of_the_model_file():
    base = {"model_filename": "C:\\m\\x-Q4_0.gguf", "model_type": "llama 8B Q4_0"}
    ident = llamabench.identity({**base, "model_n_params": 8_030_261_312, "model_size": 4_912_898_304})
    assert ident == llamabench.Identity("x-Q4_0.gguf", "llama 8B Q4_0", 8_030_261_312, 4_912_898_304, "Q4_0")
    for bad in (True, 0, -5, 1.5, "7"):
        ident = llamabench.identity({**base, "model_n_params": bad, "model_size": bad})
        assert (ident.n_params, ident.size_bytes) == (None, None)
    assert llamabench.identity({"model_n_params": 1, "model_size": 1}) == llamabench.Identity("", "", 1, 1, None)


@pytest.mark.parametrize(
    ("backends", "expected"),
    [
        # ggml backend names as llama-bench prints them (ggml_backend_reg_name: "CPU", "CUDA", "Metal", "BLAS", ...).
        ("CUDA", "cuda"),
        ("Metal,BLAS", "metal"),
        ("BLAS", "cpu"),
        ("CPU", "cpu"),
        ("", "cpu"),
        (None, "cpu"),
        ("HIP", "rocm"),
        ("ROCm", "rocm"),
        ("Vulkan", "vulkan"),
        (" cpu , CUDA ", "cuda"),
        ("BLAS,Vulkan", "vulkan"),
        ("SYCL", "other"),
        ("RPC", "other"),
        ("RPC,CPU", "cpu"),
    ],
)
def test_it_maps_every_backend_name(backends, expected):
    assert llamabench.backend_from({"backends": backends}) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (-1, None),  # llama-bench -fa auto
        (0, False),
        (1, True),
        ("on", True),
        ("ON", True),
        ("1", True),
        ("true", True),
        ("off", False),
        ("0", False),
        ("False", False),
        ("auto", None),
        (None, None),
        (1.0, None),
    ],
)
def test_it_maps_every_flash_attention_mode(value, expected):
    assert llamabench.form_data({"flash_attn": value})["flash_attn"] is expected


def test_it_fills_the_run_form_field_for_field():
    record = {
        "build_number": 4321,
        "build_commit": "c" * 80,
        "cpu_info": "A" * 250,
        "gpu_info": "G" * 250,
        "model_filename": "f" * 350,
        "model_type": "t" * 150,
        "backends": "CUDA",
        "n_gpu_layers": 0,
        "n_threads": 16,
        "n_batch": 2048,
        "n_ubatch": 512,
        "n_depth": 4096,
        "n_prompt": 0,
        "n_gen": 128,
        "model_size": 123,
        "model_n_params": 456,
        "avg_ts": 99.5,
        "stddev_ts": 0.5,
        "samples_ts": [99.0, 100.0],
        "samples_ns": [1, 2],
        "test_time": "2026-11-24T14:26:38Z",
        "type_k": "Q8_0",
        "type_v": "F16",
        "n_cpu_moe": 3,
    }
    assert llamabench.form_data(record) == {
        "runtime": "llama.cpp",
        "backend": "cuda",
        "runtime_version": "4321",
        "build_commit": "c" * 60,  # RunForm's max lengths
        "flash_attn": None,
        "cpu_info": "A" * 200,
        "gpu_info": "G" * 200,
        "model_filename": "f" * 300,
        "model_type": "t" * 120,
        "n_prompt": 0,
        "n_gen": 128,
        "n_depth": 4096,
        "n_gpu_layers": 0,  # 0 is "no layers on the GPU", not llama-bench's -1 default
        "n_threads": 16,
        "n_batch": 2048,
        "n_ubatch": 512,
        "model_size": 123,
        "model_n_params": 456,
        "avg_ts": 99.5,
        "stddev_ts": 0.5,
        "samples_ts": [99.0, 100.0],
        "samples_ns": [1, 2],
        "test_time": "2026-11-24T14:26:38Z",
        "type_k": "q8_0",
        "type_v": "f16",
    }
    empty = llamabench.form_data({"n_threads": None, "type_k": ""})
    assert empty == {
        "runtime": "llama.cpp",
        "backend": "cpu",
        "runtime_version": "",
        "build_commit": "",
        "flash_attn": None,
        "cpu_info": "",
        "gpu_info": "",
        "model_filename": "",
        "model_type": "",
    }


def line(**fields) -> str:
    return json.dumps({"n_prompt": 0, "n_gen": 128, "avg_ts": 1.0, **fields}, ensure_ascii=False)


def test_it_takes_output_up_to_the_size_cap_exactly():
    cap = llamabench.MAX_OUTPUT_BYTES
    assert cap == 512 * 1024
    text = line(pad="")
    text = line(pad="x" * (cap - len(text)))
    assert len(text.encode()) == cap and len(llamabench.parse(text)) == 1
    with pytest.raises(llamabench.LlamaBenchError, match="larger than 512 KiB"):
        llamabench.parse(text + " ")


def test_it_counts_the_size_in_bytes_not_characters():
    text = line(pad="")
    text = line(pad="é" * ((llamabench.MAX_OUTPUT_BYTES - len(text)) // 2 + 1))  # 2 bytes each in UTF-8
    assert len(text) < llamabench.MAX_OUTPUT_BYTES < len(text.encode())
    with pytest.raises(llamabench.LlamaBenchError, match="larger than"):
        llamabench.parse(text)


def test_it_takes_up_to_200_tests():
    assert llamabench.MAX_RECORDS == 200
    assert len(llamabench.parse("\n".join(line(n_gen=i) for i in range(200)))) == 200
    with pytest.raises(llamabench.LlamaBenchError, match="At most 200 tests per submission"):
        llamabench.parse("\n".join(line(n_gen=i) for i in range(201)))


def test_it_reads_jsonl_with_blank_lines_and_names_the_bad_line():
    assert len(llamabench.parse(f"\n{line()}\n\n   \n{line(n_gen=64)}\n")) == 2
    with pytest.raises(
        llamabench.LlamaBenchError, match=r"^Line 3 is not valid JSON \(.+\); expected -o json or -o jsonl\.$"
    ):
        llamabench.parse(f"{line()}\n{line()}\n{{oops\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("   \n  ", "The output is empty."),
        ('[{"n_prompt": 1,}]', "Not valid JSON (line 1: Expecting property name enclosed in double quotes)."),
        ("[1, 2]", "Test 1 is not a JSON object."),
        (f"[{line()}, 3]", "Test 2 is not a JSON object."),
        ('[{"n_prompt": 512}]', "Test 1 lacks n_gen, avg_ts: is this llama-bench output?"),
        (f'{line()}\n{{"n_gen": 1}}', "Test 2 lacks n_prompt, avg_ts: is this llama-bench output?"),
        ("[]", "The output holds no tests."),
    ],
)
def test_it_says_exactly_what_is_wrong(text, message):
    with pytest.raises(llamabench.LlamaBenchError) as caught:
        llamabench.parse(text)
    assert str(caught.value) == message


def test_a_json_document_that_is_not_a_list_is_read_as_jsonl():
    # '{"a": 1}' starts with "{", so it is one -o jsonl line; "[" output must be a list.
    assert llamabench.parse(line()) == [json.loads(line())]


def test_it_reads_the_quant_from_the_file_name_not_its_folder():
    # A folder named for a quant says nothing about the file in it: model_type decides.
    assert llamabench.quant_from({"model_filename": "/models/Q8_0/model.gguf", "model_type": "llama 8B Q6_K"}) == "Q6_K"
    assert llamabench.quant_from({"model_filename": "C:\\Q8_0\\model.gguf", "model_type": "llama 8B Q6_K"}) == "Q6_K"
    assert (
        llamabench.quant_from({"model_filename": "C:\\models\\Q5_K_S.gguf", "model_type": "llama 8B Q6_K"}) == "Q5_K_S"
    )
    assert llamabench.form_data({"build_number": "7" * 70})["runtime_version"] == "7" * 60


CANDIDATES = [
    ("llama-3-1-8b", "Llama 3.1 8B Instruct", "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF"),
    ("qwen3-30b-a3b", "Qwen3 30B A3B", "Qwen/Qwen3-30B-A3B"),
    ("local-model", "Local Model", ""),  # added by hand: no repository
]


def test_it_matches_a_model_by_its_repositorys_name_alone():
    assert llamabench.name_words("Llama-3.1-8B-Instruct") == ("llama", "3", "1", "8b", "instruct")
    assert llamabench.match_model_name("Meta-Llama-3.1-8B-Instruct-GGUF", CANDIDATES) == "llama-3-1-8b"
    assert llamabench.match_model_name("bartowski", CANDIDATES) is None  # the owner is no model's name
    assert llamabench.match_model_name("local model", CANDIDATES) == "local-model"


def test_it_matches_a_unique_part_of_a_name_in_any_order():
    assert llamabench.match_model_name("Qwen3 30B", CANDIDATES) == "qwen3-30b-a3b"  # words within one name only
    assert llamabench.match_model_name("8B Llama 3.1 Instruct", CANDIDATES) == "llama-3-1-8b"  # all its words
