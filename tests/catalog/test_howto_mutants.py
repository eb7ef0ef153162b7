"""The recipes' commands and llama.cpp flags, written out in full (issue 14: mutation testing of catalog/howto.py).

Every expected command below is the runtime's documented syntax written by hand, not read back from catalog.howto:

- llama.cpp (ggml-org/llama.cpp@00dc805, tools/server/README.md, the flag table of llama-server/llama-cli):
  `-c, --ctx-size N`; `-ngl, --n-gpu-layers N` ("max. number of layers to store in VRAM"; 99 is above any model's
  layer count, so every layer and the output go to the GPU; below that, -ngl N holds the output layer and the last
  N - 1 repeating layers: i_gpu_start = n_layer + 1 - n_gpu_layers in llama_model::load_tensors, src/llama-model.cpp,
  so a verdict of 17 repeating layers on the GPU is -ngl 18); `-ncmoe, --n-cpu-moe N` ("keep the Mixture of Experts
  (MoE) weights of the first N layers in the CPU"); `-ctk/-ctv TYPE` (default f16); `-fa, --flash-attn [on|off|auto]`;
  `-hf <user>/<model>[:quant]`; llama-server's `-np, --parallel N` slots share the `-c` cells, so N users of ctx
  tokens each need `-c` = N x ctx. A quantized V cache needs flash attention, hence `-fa on` with q8_0 and q4_0.
- Ollama's REST API (`POST /api/chat` with `model`, `messages` and `options.num_ctx`) on its port 11434; a GGUF
  repository's file by quant: `ollama run hf.co/{username}/{repository}:{quantization}` (Hugging Face's Ollama page,
  https://huggingface.co/docs/hub/ollama, "Custom Quantization"); a split GGUF it cannot pull (the Hub's "The specified
  tag is a sharded GGUF. Ollama does not support this yet", https://github.com/ollama/ollama/issues/5245), and the Hub
  keeps at most 50 GB in one file ("Per file: 50GB max", https://github.com/huggingface/hub-docs/pull/2007).
- vLLM's `vllm serve REPO --max-model-len N --tensor-parallel-size N`.

The models are unsaved catalog rows and the verdicts hand-made FitResults: only the fields the recipes read matter.
"""

from __future__ import annotations

import pytest

from catalog import fit, howto
from catalog.fit import Verdict
from catalog.howto import Recipe
from catalog.models import Hardware, HardwareKind, Model

GB = 1_000_000_000


def _result(verdict: Verdict, *, gpu_layers: int = 0, n_layers: int = 26, cpu_moe_layers: int = 0) -> fit.FitResult:
    # Only the placement fields are read by the recipes; the memory figures are left out (None).
    return fit.FitResult(
        memory=None,  # type: ignore[arg-type]
        verdict=verdict,
        gpu_layers=gpu_layers,
        n_layers=n_layers,
        needed_bytes=0,
        usable_bytes=0,
        headroom_bytes=0,
        est_decode_tps=None,
        est_prefill_tps=None,
        cpu_moe_layers=cpu_moe_layers,
    )


FITS = _result(Verdict.FITS_GPU, gpu_layers=26)
PARTIAL = _result(Verdict.PARTIAL_OFFLOAD, gpu_layers=17, n_layers=32)
MOE_PARTIAL = _result(Verdict.PARTIAL_OFFLOAD, gpu_layers=48, n_layers=48, cpu_moe_layers=12)
CPU = _result(Verdict.CPU_ONLY, n_layers=32)
NO_FIT = _result(Verdict.DOES_NOT_FIT, n_layers=32)


def _model(**fields: object) -> Model:
    defaults: dict[str, object] = {
        "name": "Gemma 3 270M",
        "slug": "gemma-3-270m",
        "family": "Gemma 3",
        "n_params": 268_098_176,
        "context_length": 32_768,
        "source_repo": "google/gemma-3-270m",
        "source_revision": "",
        "ollama_tag": "",
        "gguf_repo": "",
    }
    defaults.update(fields)
    return Model(**defaults)


# --- the -ngl count ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "ngl"),
    [
        (None, 99),  # no device chosen: every layer
        (FITS, 99),
        (MOE_PARTIAL, 99),  # every layer stays; only experts move (--n-cpu-moe)
        (PARTIAL, 18),  # the verdict's 17 of 32 repeating layers + the output layer
        (CPU, 0),
        (NO_FIT, 0),
    ],
)
def test_it_sets_the_gpu_layers_from_the_verdict(result, ngl):
    assert howto.gpu_layers_flag(result) == ngl


# --- the flags ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "flags"),
    [
        ({"ctx": 4096, "kv_type": "f16", "result": None}, ["-c", "4096", "-ngl", "99"]),
        # one user: no -np (llama-server's default is one slot)
        ({"ctx": 8192, "kv_type": "f16", "result": FITS, "users": 1}, ["-c", "8192", "-ngl", "99"]),
        # 2 users x 4,096 tokens: 8,192 cells shared by 2 slots
        ({"ctx": 4096, "kv_type": "f16", "result": FITS, "users": 2}, ["-c", "8192", "-np", "2", "-ngl", "99"]),
        # 4 users x 3,000 tokens = 12,000 cells; 17 repeating layers + the output layer
        ({"ctx": 3000, "kv_type": "f16", "result": PARTIAL, "users": 4}, ["-c", "12000", "-np", "4", "-ngl", "18"]),
        ({"ctx": 2048, "kv_type": "f16", "result": CPU}, ["-c", "2048", "-ngl", "0"]),
        (
            {"ctx": 4096, "kv_type": "f16", "result": MOE_PARTIAL},
            ["-c", "4096", "-ngl", "99", "--n-cpu-moe", "12"],
        ),
        # a non-default, unquantized cache type: -ctk/-ctv only, no flash attention needed
        ({"ctx": 4096, "kv_type": "f32", "result": FITS}, ["-c", "4096", "-ngl", "99", "-ctk", "f32", "-ctv", "f32"]),
        (
            {"ctx": 4096, "kv_type": "bf16", "result": FITS},
            ["-c", "4096", "-ngl", "99", "-ctk", "bf16", "-ctv", "bf16"],
        ),
        # quantized V cache: flash attention on
        (
            {"ctx": 4096, "kv_type": "q8_0", "result": FITS},
            ["-c", "4096", "-ngl", "99", "-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on"],
        ),
        (
            {"ctx": 4096, "kv_type": "q4_0", "result": MOE_PARTIAL, "users": 3},
            ["-c", "12288", "-np", "3", "-ngl", "99", "--n-cpu-moe", "12", "-ctk", "q4_0", "-ctv", "q4_0", "-fa", "on"],
        ),
    ],
)
def test_it_writes_the_llama_cpp_flags(kwargs, flags):
    assert howto.llama_cpp_flags(**kwargs) == flags


# --- the recipes -------------------------------------------------------------------------------------------------

OLLAMA = Recipe(
    runtime="Ollama",
    blurb="Easiest: one command, with an OpenAI-compatible API on port 11434. It pulls the Q8_0 file of "
    "ggml-org/gemma-3-270m-GGUF from Hugging Face (hf.co/OWNER/REPO:QUANT).",
    home="https://ollama.com",
    steps=(
        ("Pull the model", "ollama pull hf.co/ggml-org/gemma-3-270m-GGUF:Q8_0"),
        ("Chat", "ollama run hf.co/ggml-org/gemma-3-270m-GGUF:Q8_0"),
        (
            "Use the API",
            "curl http://localhost:11434/api/chat -d '"
            '{"model": "hf.co/ggml-org/gemma-3-270m-GGUF:Q8_0", "messages": [{"role": "user", "content": "Hi"}], '
            '"options": {"num_ctx": 8192}}'
            "'",
        ),
    ),
)
TRANSFORMERS = Recipe(
    runtime="transformers",
    blurb="Full precision in Python; the reference implementation.",
    home="https://huggingface.co/docs/transformers",
    steps=(
        ("Install", "pip install transformers torch accelerate"),
        (
            "Generate",
            "python - <<'EOF'\n"
            "from transformers import pipeline\n"
            'pipe = pipeline("text-generation", model=\'google/gemma-3-270m\', device_map="auto")\n'
            'print(pipe("Explain KV caches in one paragraph.", max_new_tokens=128)[0]["generated_text"])\n'
            "EOF",
        ),
    ),
)


def _llama_cpp(note: str, cli: str, server: str) -> Recipe:
    return Recipe(
        runtime="llama.cpp",
        blurb="Most control: pick the quant file, offload layers, serve an OpenAI-compatible API. " + note,
        home="https://github.com/ggml-org/llama.cpp",
        steps=(
            ("Chat in the terminal", f"llama-cli -hf ggml-org/gemma-3-270m-GGUF:Q8_0 {cli}"),
            ("Serve an API on :8080", f"llama-server -hf ggml-org/gemma-3-270m-GGUF:Q8_0 {server} --port 8080"),
            (
                "Measure your speed",
                "hf download ggml-org/gemma-3-270m-GGUF --include '*Q8_0*.gguf' --include '*q8_0*.gguf' "
                "--local-dir models/\n"
                "llama-bench -m models/*.gguf -p 512 -n 128 -o json > bench.json",
            ),
        ),
    )


def test_it_gives_ollama_llama_cpp_and_transformers_recipes_for_a_small_model():
    model = _model(ollama_tag="gemma3:270m", gguf_repo="ggml-org/gemma-3-270m-GGUF")
    found = howto.recipes(model, "Q8_0", 8192, kv_type="q8_0", users=2, result=FITS)
    # llama-cli is one user (-c 8192); llama-server serves 2 (-c 2 x 8192 = 16384, -np 2); q8_0 cache: -fa on.
    assert found == [
        OLLAMA,
        _llama_cpp(
            "Every layer on the GPU (-ngl 99), as the verdict above.",
            "-c 8192 -ngl 99 -ctk q8_0 -ctv q8_0 -fa on",
            "-c 16384 -np 2 -ngl 99 -ctk q8_0 -ctv q8_0 -fa on",
        ),
        TRANSFORMERS,
    ]


@pytest.mark.parametrize(
    ("result", "note", "flags"),
    [
        (None, "Choose your hardware above: the layer count (-ngl) follows its verdict.", "-c 8192 -ngl 99"),
        (
            PARTIAL,
            "17 of 32 layers and the output layer on the GPU (-ngl 18), the rest in system RAM, as the verdict above.",
            "-c 8192 -ngl 18",
        ),
        (
            MOE_PARTIAL,
            "Every layer on the GPU (-ngl 99) but the routed experts of the first 12 of 48 layers, which stay in "
            "system RAM (--n-cpu-moe 12), as the verdict above.",
            "-c 8192 -ngl 99 --n-cpu-moe 12",
        ),
        (CPU, "On the CPU (-ngl 0), as the verdict above.", "-c 8192 -ngl 0"),
        (
            NO_FIT,
            "It does not fit this device at these settings: pick a smaller quant or a shorter context.",
            "-c 8192 -ngl 0",
        ),
    ],
)
def test_it_says_where_the_layers_go_in_the_llama_cpp_recipe(result, note, flags):
    # No Ollama library tag: Ollama still pulls the repository's Q8_0 file through hf.co.
    model = _model(gguf_repo="ggml-org/gemma-3-270m-GGUF")
    found = howto.recipes(model, "Q8_0", 8192, result=result)
    assert found == [OLLAMA, _llama_cpp(note, flags, flags), TRANSFORMERS]


def test_it_defaults_to_q4_k_m_at_4096_tokens_with_an_f16_cache_for_one_user():
    # The defaults of recipes(): Q4_K_M (llama.cpp's own default quant for -hf), 4,096 tokens, f16 cache, 1 user.
    found = howto.recipes(_model(ollama_tag="gemma3:270m", gguf_repo="ggml-org/gemma-3-270m-GGUF"))
    assert [recipe.runtime for recipe in found] == ["Ollama", "llama.cpp", "transformers"]
    assert found[0].steps[2][1].endswith('"options": {"num_ctx": 4096}}\'')
    assert found[1].steps[0][1] == "llama-cli -hf ggml-org/gemma-3-270m-GGUF:Q4_K_M -c 4096 -ngl 99"
    assert found[1].steps[1][1] == "llama-server -hf ggml-org/gemma-3-270m-GGUF:Q4_K_M -c 4096 -ngl 99 --port 8080"
    # huggingface_hub's CLI (`hf`; 2.x has no `huggingface-cli`) matches --include case-sensitively (fnmatchcase in
    # filter_repo_objects) and takes one pattern per flag, so the label as written and in lower case.
    assert (
        "hf download ggml-org/gemma-3-270m-GGUF --include '*Q4_K_M*.gguf' --include '*q4_k_m*.gguf' --local-dir"
        in (found[1].steps[2][1])
    )


def test_a_model_without_an_ollama_tag_or_gguf_repo_gets_only_transformers():
    assert howto.recipes(_model()) == [TRANSFORMERS]


# --- Ollama: the chosen quant's tag ------------------------------------------------------------------------------


def _ollama(found: list[Recipe]) -> Recipe:
    return next(recipe for recipe in found if recipe.runtime == "Ollama")


def test_it_pulls_the_chosen_quant_of_the_gguf_repository_with_ollama():
    model = _model(ollama_tag="gemma3:270m", gguf_repo="ggml-org/gemma-3-270m-GGUF")
    recipe = _ollama(howto.recipes(model, "Q5_K_M", 2048, weights_bytes=200_000_000))
    assert recipe.steps[0] == ("Pull the model", "ollama pull hf.co/ggml-org/gemma-3-270m-GGUF:Q5_K_M")
    assert recipe.steps[1] == ("Chat", "ollama run hf.co/ggml-org/gemma-3-270m-GGUF:Q5_K_M")
    assert recipe.steps[2][1] == (
        "curl http://localhost:11434/api/chat -d '"
        '{"model": "hf.co/ggml-org/gemma-3-270m-GGUF:Q5_K_M", "messages": [{"role": "user", "content": "Hi"}], '
        '"options": {"num_ctx": 2048}}\''
    )


def test_without_a_gguf_repository_ollama_gets_its_library_tag_and_the_page_says_the_quant_has_none():
    recipe = _ollama(howto.recipes(_model(ollama_tag="gemma3:270m"), "Q5_K_M"))
    assert recipe.steps[0] == ("Pull the model", "ollama pull gemma3:270m")
    assert recipe.blurb == (
        "Easiest: one command, with an OpenAI-compatible API on port 11434. No Ollama tag for Q5_K_M: rigfit lists "
        "no GGUF repository to pull Q5_K_M from. gemma3:270m is Ollama's library build, in the quant Ollama chose "
        "for it."
    )


@pytest.mark.parametrize(
    ("weights_bytes", "pulled"),
    [
        (50_000_000_000, "hf.co/ggml-org/gpt-oss-120b-GGUF:MXFP4"),  # 50 GB fits one file on the Hub
        (50_000_000_001, "gpt-oss:120b"),  # one byte more: published in parts, which Ollama cannot pull
        (None, "hf.co/ggml-org/gpt-oss-120b-GGUF:MXFP4"),  # size unknown: the tag is offered
    ],
)
def test_a_gguf_over_the_hubs_50_gb_file_limit_falls_back_to_the_library_tag(weights_bytes, pulled):
    model = _model(ollama_tag="gpt-oss:120b", gguf_repo="ggml-org/gpt-oss-120b-GGUF")
    recipe = _ollama(howto.recipes(model, "MXFP4_MOE", weights_bytes=weights_bytes))
    assert recipe.steps[0] == ("Pull the model", f"ollama pull {pulled}")
    if pulled == "gpt-oss:120b":
        assert recipe.blurb.endswith(
            "No Ollama tag for MXFP4_MOE: the MXFP4_MOE file is over 50 GB, so Hugging Face holds it in parts, which "
            "Ollama cannot pull (ollama/ollama#5245); llama.cpp below can. gpt-oss:120b is Ollama's library build, "
            "in the quant Ollama chose for it."
        )


def test_a_split_gguf_without_a_library_tag_gets_no_ollama_recipe():
    model = _model(gguf_repo="unsloth/Kimi-K2-Instruct-GGUF")
    found = howto.recipes(model, "Q2_K", weights_bytes=381_000_000_000)
    assert [recipe.runtime for recipe in found] == ["llama.cpp", "transformers"]


def test_the_mxfp4_moe_quant_is_asked_for_by_its_file_label_mxfp4():
    # llama-quantize's type is MXFP4_MOE; the files are named by MXFP4 (ggml-org/gpt-oss-20b-GGUF:
    # gpt-oss-20b-mxfp4.gguf; bartowski/openai_gpt-oss-20b-GGUF: openai_gpt-oss-20b-MXFP4.gguf, "Quant type MXFP4").
    model = _model(ollama_tag="gpt-oss:20b", gguf_repo="ggml-org/gpt-oss-20b-GGUF")
    found = howto.recipes(model, "MXFP4_MOE", weights_bytes=12_100_000_000)
    assert _ollama(found).steps[0][1] == "ollama pull hf.co/ggml-org/gpt-oss-20b-GGUF:MXFP4"
    llama = next(recipe for recipe in found if recipe.runtime == "llama.cpp")
    assert llama.steps[0][1] == "llama-cli -hf ggml-org/gpt-oss-20b-GGUF:MXFP4 -c 4096 -ngl 99"
    assert "--include '*MXFP4*.gguf' --include '*mxfp4*.gguf' --local-dir" in llama.steps[2][1]


# --- Moondream ---------------------------------------------------------------------------------------------------


def test_moondream_with_a_client_bundle_gets_the_client_recipe_at_its_revision():
    model = _model(
        name="Moondream 0.5B",
        slug="moondream-0-5b",
        family="Moondream",  # the family is matched without regard to case
        source_repo="vikhyatk/moondream-0_5b",
        source_revision="9dddae84",
    )
    assert howto.recipes(model) == [
        Recipe(
            runtime="moondream (Python client)",
            blurb="Moondream's own client with the int4 bundle: caption, query, detect and point on a CPU.",
            home="https://github.com/vikhyat/moondream",
            steps=(
                ("Install", "pip install moondream==0.0.5 pillow"),
                (
                    "Download the bundle",
                    "curl -LO https://huggingface.co/vikhyatk/moondream-0_5b/resolve/9dddae84/moondream-0_5b-int4.mf.gz",
                ),
                (
                    "Ask about an image",
                    "python - <<'EOF'\n"
                    "import moondream as md\n"
                    "from PIL import Image\n"
                    "model = md.vl(model='moondream-0_5b-int4.mf.gz')\n"
                    'encoded = model.encode_image(Image.open("photo.jpg"))\n'
                    'print(model.caption(encoded)["caption"])\n'
                    'print(model.query(encoded, "How many people are in the picture?")["answer"])\n'
                    "EOF",
                ),
            ),
        )
    ]


def test_the_moondream_bundle_url_falls_back_to_main_without_a_revision():
    model = _model(slug="moondream-0-5b", family="moondream", source_repo="vikhyatk/moondream-0_5b")
    (recipe,) = howto.recipes(model)
    assert recipe.steps[1][1] == (
        "curl -LO https://huggingface.co/vikhyatk/moondream-0_5b/resolve/main/moondream-0_5b-int4.mf.gz"
    )


MOONDREAM2 = Recipe(
    runtime="moondream (Python)",
    blurb="Moondream's own API through transformers: caption, query, detect and point.",
    home="https://github.com/vikhyat/moondream",
    steps=(
        ("Install", "pip install transformers torch pillow"),
        (
            "Ask about an image",
            "python - <<'EOF'\n"
            "from PIL import Image\n"
            "from transformers import AutoModelForCausalLM\n"
            "model = AutoModelForCausalLM.from_pretrained('vikhyatk/moondream2', revision='2025-06-21', "
            "trust_remote_code=True)\n"
            'image = Image.open("photo.jpg")\n'
            'print(model.caption(image, length="short")["caption"])\n'
            'print(model.query(image, "How many people are in the picture?")["answer"])\n'
            "EOF",
        ),
    ),
)


def test_moondream_without_a_bundle_gets_its_transformers_route_and_no_plain_transformers_or_vllm():
    model = _model(
        slug="moondream-2",
        family="MoonDream",
        n_params=1_930_000_000,  # above vLLM's 1B floor, on a GPU where the 16-bit weights fit: still no vLLM
        source_repo="vikhyatk/moondream2",
        source_revision="2025-06-21",
    )
    gpu = Hardware(kind=HardwareKind.GPU)
    assert howto.recipes(model, hardware=gpu, vllm_result=FITS) == [MOONDREAM2]
    unpinned = _model(slug="moondream-2", family="moondream", source_repo="vikhyatk/moondream2")
    (recipe,) = howto.recipes(unpinned)
    assert "revision='main'" in recipe.steps[1][1]


# --- vLLM --------------------------------------------------------------------------------------------------------

LLAMA_8B = {
    "name": "Llama 3.1 8B Instruct",
    "slug": "llama-3-1-8b-instruct",
    "family": "Llama 3.1",
    "n_params": 8_030_261_248,
    "context_length": 131_072,
    "source_repo": "meta-llama/Llama-3.1-8B-Instruct",
}


def _vllm(command: str) -> Recipe:
    return Recipe(
        runtime="vLLM",
        blurb="High-throughput serving for many concurrent users: its 16-bit weights fit this GPU at these settings.",
        home="https://docs.vllm.ai",
        steps=(("Install", "pip install vllm"), ("Serve on :8000", command)),
    )


@pytest.mark.parametrize(
    ("ctx", "gpu_count", "command"),
    [
        (8192, 1, "vllm serve meta-llama/Llama-3.1-8B-Instruct --max-model-len 8192"),
        (8192, 2, "vllm serve meta-llama/Llama-3.1-8B-Instruct --max-model-len 8192 --tensor-parallel-size 2"),
        # a context past the model's 131,072 tokens is served at the model's own maximum
        (262_144, 4, "vllm serve meta-llama/Llama-3.1-8B-Instruct --max-model-len 131072 --tensor-parallel-size 4"),
    ],
)
def test_it_offers_vllm_where_the_16_bit_weights_fit_the_gpu(ctx, gpu_count, command):
    gpu = Hardware(kind=HardwareKind.GPU)
    found = howto.recipes(_model(**LLAMA_8B), ctx=ctx, hardware=gpu, gpu_count=gpu_count, vllm_result=FITS)
    assert [recipe.runtime for recipe in found] == ["transformers", "vLLM"]
    assert found[1] == _vllm(command)


@pytest.mark.parametrize(
    ("kind", "vllm_result", "n_params", "offered"),
    [
        (HardwareKind.GPU, FITS, 1_000_000_000, True),  # exactly 1B: offered
        (HardwareKind.GPU, FITS, 999_999_999, False),  # under 1B: not worth a vLLM server
        (HardwareKind.GPU, PARTIAL, 8_030_261_248, False),  # the 16-bit weights do not fit entirely
        (HardwareKind.GPU, CPU, 8_030_261_248, False),
        (HardwareKind.GPU, None, 8_030_261_248, False),  # no 16-bit verdict
        (HardwareKind.UNIFIED, FITS, 8_030_261_248, False),  # vLLM here serves discrete GPUs only
        (HardwareKind.CPU, FITS, 8_030_261_248, False),
        (None, FITS, 8_030_261_248, False),  # no hardware chosen
    ],
)
def test_it_offers_vllm_only_for_a_1b_plus_model_whose_16_bit_weights_fit_a_discrete_gpu(
    kind, vllm_result, n_params, offered
):
    hardware = Hardware(kind=kind) if kind is not None else None
    found = howto.recipes(_model(**{**LLAMA_8B, "n_params": n_params}), hardware=hardware, vllm_result=vllm_result)
    assert ("vLLM" in [recipe.runtime for recipe in found]) is offered
    if offered:  # the defaults: one GPU (no tensor parallelism), 4,096 tokens
        assert found[-1].steps[1][1] == "vllm serve meta-llama/Llama-3.1-8B-Instruct --max-model-len 4096"
