"""Parse `llama-bench -o json` and `-o jsonl` output into flat records, one per test.

llama-bench (llama.cpp tools/llama-bench/llama-bench.cpp, the `json_printer` and `jsonl_printer`) prints every
test as one object with the same fields; `-o json` wraps them in a list, `-o jsonl` prints one per line. Field
names are kept as they are, so each record maps onto `RunForm` field for field.

Pure: text in, dictionaries out; recognising the catalog model and quant lives in services.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

MAX_OUTPUT_BYTES = 512 * 1024
MAX_RECORDS = 200
REQUIRED = ("n_prompt", "n_gen", "avg_ts")

# llama.cpp's llama_model_ftype_name() (src/llama-model-loader.cpp) names, as they appear at the end of model_type.
FTYPE_NAMES: dict[str, str] = {
    "all F32": "F32",
    "F16": "F16",
    "BF16": "BF16",
    "Q4_0": "Q4_0",
    "Q4_1": "Q4_1",
    "Q5_0": "Q5_0",
    "Q5_1": "Q5_1",
    "Q8_0": "Q8_0",
    "MXFP4 MoE": "MXFP4",
    "Q2_K - Medium": "Q2_K",
    "Q2_K - Small": "Q2_K_S",
    "Q3_K - Small": "Q3_K_S",
    "Q3_K - Medium": "Q3_K_M",
    "Q3_K - Large": "Q3_K_L",
    "Q4_K - Small": "Q4_K_S",
    "Q4_K - Medium": "Q4_K_M",
    "Q5_K - Small": "Q5_K_S",
    "Q5_K - Medium": "Q5_K_M",
    "Q6_K": "Q6_K",
    "IQ2_XXS - 2.0625 bpw": "IQ2_XXS",
    "IQ2_XS - 2.3125 bpw": "IQ2_XS",
    "IQ2_S - 2.5 bpw": "IQ2_S",
    "IQ2_M - 2.7 bpw": "IQ2_M",
    "IQ3_XS - 3.3 bpw": "IQ3_XS",
    "IQ3_XXS - 3.0625 bpw": "IQ3_XXS",
    "IQ1_S - 1.5625 bpw": "IQ1_S",
    "IQ1_M - 1.75 bpw": "IQ1_M",
    "IQ4_NL - 4.5 bpw": "IQ4_NL",
    "IQ4_XS - 4.25 bpw": "IQ4_XS",
    "IQ3_S - 3.4375 bpw": "IQ3_S",
    "IQ3_S mix - 3.66 bpw": "IQ3_M",
}
_FILENAME_QUANT = re.compile(
    r"(?<![A-Za-z0-9])(I?Q[1-8]_(?:K_[SML]|K|[01]|NL|XXS|XS|S|M|L)|Q8_0|BF16|F16|F32|MXFP4)(?![A-Za-z0-9])",
    re.IGNORECASE,
)
# llama-bench's `backends` is a comma-separated list of ggml backend names (e.g. "CPU", "CUDA", "Metal,BLAS").
_BACKENDS = {"cuda": "cuda", "metal": "metal", "rocm": "rocm", "hip": "rocm", "vulkan": "vulkan", "cpu": "cpu"}


class LlamaBenchError(ValueError):
    """The text is not llama-bench JSON output; the message says why, for the person who pasted it."""


@dataclass(frozen=True, slots=True)
class Identity:
    """What a record says about the model file, for matching against the catalog."""

    filename: str
    model_type: str
    n_params: int | None
    size_bytes: int | None
    quant: str | None


def parse(text: str) -> list[dict[str, Any]]:
    """Every test in `llama-bench -o json` or `-o jsonl` output, as a dictionary of llama-bench's fields."""
    if len(text.encode()) > MAX_OUTPUT_BYTES:
        raise LlamaBenchError(f"The output is larger than {MAX_OUTPUT_BYTES // 1024} KiB.")
    stripped = text.strip()
    if not stripped:
        raise LlamaBenchError("The output is empty.")
    records: list[Any]
    if stripped.startswith("["):
        try:
            records = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise LlamaBenchError(f"Not valid JSON (line {exc.lineno}: {exc.msg}).") from exc
        if not isinstance(records, list):
            raise LlamaBenchError("Expected a JSON list of tests (llama-bench -o json).")
    else:
        records = []
        for number, line in enumerate(stripped.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise LlamaBenchError(
                    f"Line {number} is not valid JSON ({exc.msg}); expected -o json or -o jsonl."
                ) from exc
    if not records:
        raise LlamaBenchError("The output holds no tests.")
    if len(records) > MAX_RECORDS:
        raise LlamaBenchError(f"At most {MAX_RECORDS} tests per submission.")
    for index, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise LlamaBenchError(f"Test {index} is not a JSON object.")
        missing = [name for name in REQUIRED if name not in record]
        if missing:
            raise LlamaBenchError(f"Test {index} lacks {', '.join(missing)}: is this llama-bench output?")
    return records


def quant_from(record: dict[str, Any]) -> str | None:
    """The quant name, from the file name (Q4_K_M) or else from model_type's ftype ("... Q4_K - Medium")."""
    filename = str(record.get("model_filename") or "")
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    matches = _FILENAME_QUANT.findall(base)
    if matches:
        return matches[-1].upper()
    model_type = str(record.get("model_type") or "")
    for ftype, name in sorted(FTYPE_NAMES.items(), key=lambda item: -len(item[0])):
        if model_type.endswith(" " + ftype):
            return name
    return None


def identity(record: dict[str, Any]) -> Identity:
    def as_int(value: Any) -> int | None:
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    filename = str(record.get("model_filename") or "")
    return Identity(
        filename=filename.replace("\\", "/").rsplit("/", 1)[-1],
        model_type=str(record.get("model_type") or ""),
        n_params=as_int(record.get("model_n_params")),
        size_bytes=as_int(record.get("model_size")),
        quant=quant_from(record),
    )


def backend_from(record: dict[str, Any]) -> str:
    """Our backend name for llama-bench's `backends` (first GPU backend named; else CPU)."""
    names = [part.strip().lower() for part in str(record.get("backends") or "").split(",") if part.strip()]
    for name in names:
        if name in _BACKENDS and name != "cpu":
            return _BACKENDS[name]
    if not names or "cpu" in names or "blas" in names:
        return "cpu"
    return "other"


def _flash_attn(value: Any) -> bool | None:
    # Older llama-bench prints a bool; newer prints the -fa mode as an int (-1 auto, 0 off, 1 on) or a string.
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return None if value < 0 else bool(value)
    if isinstance(value, str):
        return {"on": True, "1": True, "true": True, "off": False, "0": False, "false": False}.get(value.lower())
    return None


def form_data(record: dict[str, Any]) -> dict[str, Any]:
    """The `RunForm` fields a llama-bench record fills (the model, quant and hardware are matched elsewhere)."""
    data: dict[str, Any] = {
        "runtime": "llama.cpp",
        "backend": backend_from(record),
        "runtime_version": str(record.get("build_number") or "")[:60],
        "build_commit": str(record.get("build_commit") or "")[:60],
        "flash_attn": _flash_attn(record.get("flash_attn")),
        "cpu_info": str(record.get("cpu_info") or "")[:200],
        "gpu_info": str(record.get("gpu_info") or "")[:200],
        "model_filename": str(record.get("model_filename") or "")[:300],
        "model_type": str(record.get("model_type") or "")[:120],
    }
    for name in (
        "n_prompt",
        "n_gen",
        "n_depth",
        "n_gpu_layers",
        "n_threads",
        "n_batch",
        "n_ubatch",
        "model_size",
        "model_n_params",
        "avg_ts",
        "stddev_ts",
        "samples_ts",
        "samples_ns",
        "test_time",
    ):
        if record.get(name) is not None:
            data[name] = record[name]
    if isinstance(data.get("n_gpu_layers"), int) and data["n_gpu_layers"] < 0:
        del data["n_gpu_layers"]  # -1: llama-bench's default, "all layers / let the runtime decide"
    for name in ("type_k", "type_v"):
        if record.get(name):
            data[name] = str(record[name]).lower()
    return data


# --- names people type --------------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")


def name_words(text: str) -> tuple[str, ...]:
    """Lower-case words of a model name, slug or repository ("Llama-3.1-8B-Instruct" -> llama, 3, 1, 8b, instruct)."""
    return tuple(_WORD.findall(text.lower()))


def match_model_name(text: str, candidates: list[tuple[str, str, str]]) -> str | None:
    """The slug of the one catalog model a typed name means, or None.

    `candidates` are (slug, name, source repository) triples. A name matches when its words equal a candidate's
    slug, name, repository or repository name ("meta-llama/Llama-3.1-8B-Instruct"); failing that, when its words
    are all among exactly one candidate's name words ("Llama 3.1 8B" -> "Llama 3.1 8B Instruct").
    """
    wanted = name_words(text)
    if not wanted:
        return None
    exact = []
    for slug, name, repo in candidates:
        spellings = {name_words(slug), name_words(name), name_words(repo), name_words(repo.rsplit("/", 1)[-1])}
        if wanted in spellings:
            exact.append(slug)
    if len(exact) == 1:
        return exact[0]
    if exact:
        return None
    words = set(wanted)
    within = [slug for slug, name, _repo in candidates if words <= set(name_words(name))]
    return within[0] if len(within) == 1 else None
