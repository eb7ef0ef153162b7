"""Copy-paste "how to run" recipes for a model, per runtime, filled in from the catalog entry."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from catalog import fit
from catalog.models import Hardware, HardwareKind, Model


@dataclass(frozen=True, slots=True)
class Recipe:
    runtime: str
    blurb: str
    home: str
    steps: tuple[tuple[str, str], ...]  # (what, command)


def _is_moondream(model: Model) -> bool:
    return model.family.lower() == "moondream"


# Moondream models published only as bundles for Moondream's own client (no transformers code): the file in the
# model's repository at its source_revision.
MOONDREAM_CLIENT_BUNDLES = {"moondream-0-5b": "moondream-0_5b-int4.mf.gz"}


def _moondream_client_recipe(model: Model, bundle: str) -> Recipe:
    url = f"https://huggingface.co/{model.source_repo}/resolve/{model.source_revision or 'main'}/{bundle}"
    return Recipe(
        runtime="moondream (Python client)",
        blurb="Moondream's own client with the int4 bundle: caption, query, detect and point on a CPU.",
        home="https://github.com/vikhyat/moondream",
        steps=(
            ("Install", "pip install moondream==0.0.5 pillow"),
            ("Download the bundle", f"curl -LO {shlex.quote(url)}"),
            (
                "Ask about an image",
                "python - <<'EOF'\n"
                "import moondream as md\n"
                "from PIL import Image\n"
                f"model = md.vl(model={bundle!r})\n"
                'encoded = model.encode_image(Image.open("photo.jpg"))\n'
                'print(model.caption(encoded)["caption"])\n'
                'print(model.query(encoded, "How many people are in the picture?")["answer"])\n'
                "EOF",
            ),
        ),
    )


def _gguf_include_flags(quant_name: str) -> str:
    """`hf download`'s --include flags for a quant's file (one flag per pattern: the option accumulates), its label
    as written and in lower case, since the patterns match case-sensitively (huggingface_hub's filter_repo_objects
    uses fnmatchcase) and uploaders write both (ggml-org's gpt-oss-20b-mxfp4.gguf, bartowski's
    openai_gpt-oss-20b-MXFP4.gguf)."""
    patterns = dict.fromkeys((f"*{quant_name}*.gguf", f"*{quant_name.lower()}*.gguf"))
    return " ".join(f"--include {shlex.quote(pattern)}" for pattern in patterns)


# The quant label a GGUF repository's file names carry, where it differs from llama-quantize's type name: llama.cpp's
# MXFP4_MOE type writes files named "...-mxfp4.gguf" (ggml-org/gpt-oss-20b-GGUF, bartowski/openai_gpt-oss-20b-GGUF's
# "openai_gpt-oss-20b-MXFP4.gguf"), and the Hub resolves a tag against that label.
GGUF_FILE_LABELS = {"MXFP4_MOE": "MXFP4"}


def gguf_tag(quant_name: str) -> str:
    """The `:TAG` that picks `quant_name`'s file in a GGUF repository, for llama.cpp's `-hf REPO:TAG` and Ollama's
    `hf.co/REPO:TAG` (both resolve it through the Hub's manifest endpoint, which matches it to the file names)."""
    return GGUF_FILE_LABELS.get(quant_name.upper(), quant_name)


# Hugging Face stores at most 50 GB in one file ("Per file: 50GB max, 20GB recommended", huggingface/hub-docs
# docs/hub/datasets-upload-guide-llm.md; https://github.com/huggingface/hub-docs/pull/2007), so a larger GGUF is
# published in parts (NAME-00001-of-0000N.gguf), and Ollama cannot pull a split GGUF through hf.co: the Hub answers
# "The specified tag is a sharded GGUF. Ollama does not support this yet" (https://github.com/ollama/ollama/issues/5245).
HF_MAX_FILE_BYTES = 50 * 10**9


def ollama_model_ref(model: Model, quant_name: str, *, weights_bytes: int | None = None) -> tuple[str, str]:
    """(the model name to give Ollama, what it says about the quant). With a GGUF repository and a file Ollama can
    pull, `hf.co/OWNER/REPO:QUANT` (Hugging Face's documented form for Ollama, https://huggingface.co/docs/hub/ollama)
    pulls exactly `quant_name`; otherwise Ollama's own library tag, which holds the quant Ollama chose, and the
    reason no tag for `quant_name` exists. ("", reason) when there is neither."""
    split = weights_bytes is not None and weights_bytes > HF_MAX_FILE_BYTES
    if model.gguf_repo and not split:
        return (
            f"hf.co/{model.gguf_repo}:{gguf_tag(quant_name)}",
            f"It pulls the {quant_name} file of {model.gguf_repo} from Hugging Face (hf.co/OWNER/REPO:QUANT).",
        )
    if not model.gguf_repo:
        why = f"rigfit lists no GGUF repository to pull {quant_name} from"
    else:
        why = (
            f"the {quant_name} file is over 50 GB, so Hugging Face holds it in parts, which Ollama cannot pull "
            "(ollama/ollama#5245); llama.cpp below can"
        )
    if not model.ollama_tag:
        return "", f"No Ollama tag for {quant_name}: {why}."
    return (
        model.ollama_tag,
        f"No Ollama tag for {quant_name}: {why}. {model.ollama_tag} is Ollama's library build, in the quant Ollama "
        "chose for it.",
    )


def ollama_recipe(model: Model, quant_name: str, ctx: int, *, weights_bytes: int | None = None) -> Recipe | None:
    name, note = ollama_model_ref(model, quant_name, weights_bytes=weights_bytes)
    if not name:
        return None
    tag = shlex.quote(name)
    return Recipe(
        runtime="Ollama",
        blurb="Easiest: one command, with an OpenAI-compatible API on port 11434. " + note,
        home="https://ollama.com",
        steps=(
            ("Pull the model", f"ollama pull {tag}"),
            ("Chat", f"ollama run {tag}"),
            (
                "Use the API",
                "curl http://localhost:11434/api/chat -d "
                + shlex.quote(
                    f'{{"model": "{name}", "messages": [{{"role": "user", "content": "Hi"}}],'
                    f' "options": {{"num_ctx": {ctx}}}}}'
                ),
            ),
        ),
    )


ALL_LAYERS = 99  # llama.cpp's idiom for "every layer and the output on the GPU" (-ngl above n_layer)


def gpu_layers_flag(result: fit.FitResult | None) -> int:
    """llama.cpp's -ngl for the verdict's placement: every layer when the model fits entirely, the verdict's layer
    count plus one for a partial offload (llama.cpp's -ngl N offloads its output layer and the last N - 1 repeating
    layers: i_gpu_start = n_layer + 1 - n_gpu_layers in llama_model::load_tensors, as fit._place counts them), 0 for
    a CPU-only run. Without a verdict (no device chosen): every layer."""
    if result is None or result.verdict == fit.Verdict.FITS_GPU or result.cpu_moe_layers:
        return ALL_LAYERS
    if result.verdict == fit.Verdict.PARTIAL_OFFLOAD:
        return result.gpu_layers + 1
    return 0


def llama_cpp_flags(*, ctx: int, kv_type: str, result: fit.FitResult | None, users: int = 1) -> list[str]:
    """The flags that make llama.cpp allocate what the verdict counts: -c (KV cells; llama-server's -c is shared
    by its -np slots, so users x ctx), -ngl from the placement, and -ctk/-ctv for a quantized or non-default KV
    cache (a quantized V cache needs flash attention: -fa on)."""
    flags = ["-c", str(ctx * users)]
    if users > 1:
        flags += ["-np", str(users)]
    flags += ["-ngl", str(gpu_layers_flag(result))]
    if result is not None and result.cpu_moe_layers:
        flags += ["--n-cpu-moe", str(result.cpu_moe_layers)]
    if kv_type != "f16":
        flags += ["-ctk", kv_type, "-ctv", kv_type]
        if kv_type in ("q8_0", "q4_0"):
            flags += ["-fa", "on"]
    return flags


def _placement_note(result: fit.FitResult | None) -> str:
    if result is None:
        return "Choose your hardware above: the layer count (-ngl) follows its verdict."
    if result.verdict == fit.Verdict.FITS_GPU:
        return "Every layer on the GPU (-ngl 99), as the verdict above."
    if result.verdict == fit.Verdict.PARTIAL_OFFLOAD and result.cpu_moe_layers:
        return (
            f"Every layer on the GPU (-ngl 99) but the routed experts of the first {result.cpu_moe_layers} of "
            f"{result.n_layers} layers, which stay in system RAM (--n-cpu-moe {result.cpu_moe_layers}), as the "
            "verdict above."
        )
    if result.verdict == fit.Verdict.PARTIAL_OFFLOAD:
        return (
            f"{result.gpu_layers} of {result.n_layers} layers and the output layer on the GPU "
            f"(-ngl {gpu_layers_flag(result)}), the rest in system RAM, as the verdict above."
        )
    if result.verdict == fit.Verdict.CPU_ONLY:
        return "On the CPU (-ngl 0), as the verdict above."
    return "It does not fit this device at these settings: pick a smaller quant or a shorter context."


def recipes(
    model: Model,
    quant_name: str = "Q4_K_M",
    ctx: int = 4096,
    *,
    kv_type: str = "f16",
    users: int = 1,
    result: fit.FitResult | None = None,
    hardware: Hardware | None = None,
    gpu_count: int = 1,
    vllm_result: fit.FitResult | None = None,
    weights_bytes: int | None = None,
) -> list[Recipe]:
    """Recipes that apply to this model; each command is filled with the model's own repository and tags, and the
    llama.cpp flags with the verdict `result` of `quant_name` at `ctx` tokens (the runtime's -c). vLLM, which serves
    the 16-bit weights on a GPU, is offered only where `vllm_result` (the 16-bit quant's verdict on `hardware`)
    fits entirely. `weights_bytes` (the quant's file size, where known) tells whether its GGUF is split into parts on
    Hugging Face, which Ollama cannot pull."""
    found: list[Recipe] = []
    repo = shlex.quote(model.source_repo)
    if _is_moondream(model) and model.slug in MOONDREAM_CLIENT_BUNDLES:
        found.append(_moondream_client_recipe(model, MOONDREAM_CLIENT_BUNDLES[model.slug]))
    elif _is_moondream(model):
        found.append(
            Recipe(
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
                        f"model = AutoModelForCausalLM.from_pretrained({model.source_repo!r}, "
                        f"revision={model.source_revision or 'main'!r}, trust_remote_code=True)\n"
                        'image = Image.open("photo.jpg")\n'
                        'print(model.caption(image, length="short")["caption"])\n'
                        'print(model.query(image, "How many people are in the picture?")["answer"])\n'
                        "EOF",
                    ),
                ),
            )
        )
    ollama = ollama_recipe(model, quant_name, ctx, weights_bytes=weights_bytes)
    if ollama is not None:
        found.append(ollama)
    if model.gguf_repo:
        gguf = shlex.quote(f"{model.gguf_repo}:{gguf_tag(quant_name)}")
        cli = " ".join(llama_cpp_flags(ctx=ctx, kv_type=kv_type, result=result))
        server = " ".join(llama_cpp_flags(ctx=ctx, kv_type=kv_type, result=result, users=users))
        found.append(
            Recipe(
                runtime="llama.cpp",
                blurb="Most control: pick the quant file, offload layers, serve an OpenAI-compatible API. "
                + _placement_note(result),
                home="https://github.com/ggml-org/llama.cpp",
                steps=(
                    ("Chat in the terminal", f"llama-cli -hf {gguf} {cli}"),
                    ("Serve an API on :8080", f"llama-server -hf {gguf} {server} --port 8080"),
                    (
                        "Measure your speed",
                        f"hf download {shlex.quote(model.gguf_repo)} "
                        f"{_gguf_include_flags(gguf_tag(quant_name))} --local-dir models/\n"
                        "llama-bench -m models/*.gguf -p 512 -n 128 -o json > bench.json",
                    ),
                ),
            )
        )
    if not _is_moondream(model):  # Moondream's recipe above is its transformers (or client) route
        found.append(
            Recipe(
                runtime="transformers",
                blurb="Full precision in Python; the reference implementation.",
                home="https://huggingface.co/docs/transformers",
                steps=(
                    ("Install", "pip install transformers torch accelerate"),
                    (
                        "Generate",
                        "python - <<'EOF'\n"
                        "from transformers import pipeline\n"
                        f'pipe = pipeline("text-generation", model={model.source_repo!r}, device_map="auto")\n'
                        'print(pipe("Explain KV caches in one paragraph.", max_new_tokens=128)[0]["generated_text"])\n'
                        "EOF",
                    ),
                ),
            )
        )
    vllm_fits = (
        hardware is not None
        and hardware.kind == HardwareKind.GPU
        and vllm_result is not None
        and vllm_result.verdict == fit.Verdict.FITS_GPU
    )
    if vllm_fits and model.n_params >= 1_000_000_000 and not _is_moondream(model):
        parallel = f" --tensor-parallel-size {gpu_count}" if gpu_count > 1 else ""
        found.append(
            Recipe(
                runtime="vLLM",
                blurb="High-throughput serving for many concurrent users: its 16-bit weights fit this GPU at "
                "these settings.",
                home="https://docs.vllm.ai",
                steps=(
                    ("Install", "pip install vllm"),
                    (
                        "Serve on :8000",
                        f"vllm serve {repo} --max-model-len {min(ctx, model.context_length)}{parallel}",
                    ),
                ),
            )
        )
    return found
