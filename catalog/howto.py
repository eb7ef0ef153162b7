"""Copy-paste "how to run" recipes for a model, per runtime, filled in from the catalog entry."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from catalog.models import Model


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


def _gguf_file_glob(quant_name: str) -> str:
    return f"*{quant_name}*.gguf"


def recipes(model: Model, quant_name: str = "Q4_K_M", ctx: int = 4096) -> list[Recipe]:
    """Recipes that apply to this model; each command is filled with the model's own repository and tags."""
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
    if model.ollama_tag:
        tag = shlex.quote(model.ollama_tag)
        found.append(
            Recipe(
                runtime="Ollama",
                blurb="Easiest: one command, with an OpenAI-compatible API on port 11434.",
                home="https://ollama.com",
                steps=(
                    ("Pull the model", f"ollama pull {tag}"),
                    ("Chat", f"ollama run {tag}"),
                    (
                        "Use the API",
                        "curl http://localhost:11434/api/chat -d "
                        + shlex.quote(
                            f'{{"model": "{model.ollama_tag}", "messages": [{{"role": "user", "content": "Hi"}}],'
                            f' "options": {{"num_ctx": {ctx}}}}}'
                        ),
                    ),
                ),
            )
        )
    if model.gguf_repo:
        gguf = shlex.quote(f"{model.gguf_repo}:{quant_name}")
        found.append(
            Recipe(
                runtime="llama.cpp",
                blurb="Most control: pick the quant file, offload layers, serve an OpenAI-compatible API.",
                home="https://github.com/ggml-org/llama.cpp",
                steps=(
                    ("Chat in the terminal", f"llama-cli -hf {gguf} -c {ctx} -ngl 99"),
                    ("Serve an API on :8080", f"llama-server -hf {gguf} -c {ctx} -ngl 99 --port 8080"),
                    (
                        "Measure your speed",
                        f"huggingface-cli download {shlex.quote(model.gguf_repo)} --include "
                        f"{shlex.quote(_gguf_file_glob(quant_name))} --local-dir models/\n"
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
    if model.n_params >= 1_000_000_000 and not _is_moondream(model):
        found.append(
            Recipe(
                runtime="vLLM",
                blurb="High-throughput serving on NVIDIA/AMD GPUs for many concurrent users.",
                home="https://docs.vllm.ai",
                steps=(
                    ("Install", "pip install vllm"),
                    ("Serve on :8000", f"vllm serve {repo} --max-model-len {min(ctx, model.context_length)}"),
                ),
            )
        )
    return found
