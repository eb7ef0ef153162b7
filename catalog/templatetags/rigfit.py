"""Formatting for figures on the pages: units are always stated (GB = 10^9 bytes, GiB = 2^30)."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from django import template

register = template.Library()

VERDICT_LABELS = {
    "fits-gpu": ("Fits in GPU memory", "fits"),
    "partial": ("Partial offload", "partial"),
    "cpu-only": ("CPU only", "cpu"),
    "no-fit": ("Does not fit", "nofit"),
}


@register.filter
def gb(value: int | float | None, digits: int = 2) -> str:
    """Bytes as decimal gigabytes: 1_234_000_000 -> '1.23 GB'."""
    if value is None or value == "":
        return "–"
    gigabytes = float(value) / 1e9
    if abs(gigabytes) >= 100:
        return f"{gigabytes:,.0f} GB"
    if abs(gigabytes) >= 10:
        return f"{gigabytes:.1f} GB"
    if abs(gigabytes) < 0.01 and value:
        return f"{float(value) / 1e6:.1f} MB"
    return f"{gigabytes:.{digits}f} GB"


@register.filter
def gib(value: int | float | None) -> str:
    """Device memory the way it is sold: 8 GiB cards are "8 GB" cards. Whole numbers drop the decimals."""
    if value is None or value == "":
        return "–"
    gibibytes = float(value) / 1024**3
    if abs(gibibytes - round(gibibytes)) < 0.05:
        return f"{round(gibibytes)} GiB"
    return f"{gibibytes:.1f} GiB"


@register.filter
def params(value: int | None) -> str:
    """Parameter counts the way people say them: 268M, 8.0B, 70.6B."""
    if not value:
        return "–"
    if value >= 0.9995e9:  # 999.6M reads as 1.0B, the way it is marketed
        return f"{value / 1e9:.1f}B"
    return f"{value / 1e6:.0f}M"


@register.filter
def tps(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}"


@register.filter
def signed(value: float | None, digits: int = 3) -> str:
    """A difference with its sign: +0.175, -0.005, 0.000."""
    if value is None or value == "":
        return "–"
    return f"{float(value):+.{digits}f}" if value else f"{0:.{digits}f}"


@register.filter
def verdict_label(value: str) -> str:
    return VERDICT_LABELS.get(str(value), (str(value), ""))[0]


@register.filter
def verdict_class(value: str) -> str:
    return VERDICT_LABELS.get(str(value), ("", "unknown"))[1]


@register.filter
def vram_bytes(memory: object) -> int | None:
    """What a run needs of a discrete GPU with every layer on it, runtime overhead included: the breakdown's total
    with only the weights llama.cpp places on the GPU (it keeps the input embeddings in system RAM; a tied output
    layer gets its own copy), so the quant table's "VRAM needed" agrees with the verdict's "needs" on a GPU."""
    if memory is None or memory == "":
        return None
    return memory.total_bytes - memory.weights_bytes + memory.gpu_weights_bytes


@register.filter
def percent(part: int | float, whole: int | float) -> float:
    if not whole:
        return 0.0
    return max(0.0, min(100.0, 100.0 * float(part) / float(whole)))


@register.simple_tag(takes_context=True)
def query_with(context: template.Context, **changes: object) -> str:
    """The current query string with some parameters replaced (None removes one); for plain links."""
    request = context.get("request")
    query = request.GET.copy() if request is not None else {}
    for key, value in changes.items():
        if value is None or value == "":
            query.pop(key, None)
        else:
            query[key] = str(value)
    encoded = query.urlencode() if hasattr(query, "urlencode") else urlencode(query)
    return f"?{encoded}" if encoded else "?"


@register.filter
def get_item(mapping: dict, key: object) -> object:
    return mapping.get(key) if mapping else None


@register.filter
def seconds(value: float | None) -> str:
    """A duration: 0.042 -> '42 ms', 1.234 -> '1.23 s', 75.4 -> '75.4 s'."""
    if value is None or value == "":
        return "–"
    value = float(value)
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 10:
        return f"{value:.2f} s"
    if value < 100:
        return f"{value:.1f} s"
    return f"{value:,.0f} s"


# Readable names for the figures a model's `sources` cites (the rest fall back to the model field's verbose name).
FIELD_LABELS = {
    "n_params": "parameters",
    "n_active_params": "active parameters",
    "vision_params": "vision encoder parameters",
    "image_tokens": "tokens per image",
    "n_layers": "layers",
    "hidden_size": "hidden size",
    "intermediate_size": "feed-forward size",
    "n_heads": "attention heads",
    "n_kv_heads": "KV heads",
    "head_dim": "head dimension",
    "vocab_size": "vocabulary size",
    "tied_embeddings": "tied embeddings",
    "context_length": "context length",
    "sliding_window": "sliding window",
    "swa_layers": "sliding-window layers",
    "kv_lora_rank": "MLA latent size",
    "qk_rope_head_dim": "MLA rotary dimension",
    "n_experts": "experts",
    "n_experts_used": "experts per token",
    "license": "licence",
}
# A source at least this long, quoted inside another, is named instead of repeated.
_QUOTED_MIN_CHARS = 80


def field_label(model: object, name: str) -> str:
    if name in FIELD_LABELS:
        return FIELD_LABELS[name]
    try:
        return str(model._meta.get_field(name).verbose_name)  # type: ignore[attr-defined]
    except Exception:  # not a model field (a figure only the sources name): its name, readable
        return name.replace("_", " ")


@register.filter
def source_rows(model: object) -> list[tuple[str, str]]:
    """A model's sources as (readable figure names, source text), one row per distinct source; a long source that
    another one quotes whole is named there ("the source of layers, ... above") instead of printed twice."""
    groups = list(model.sources_by_origin()) if hasattr(model, "sources_by_origin") else []  # type: ignore[union-attr]
    labelled = [(", ".join(field_label(model, name) for name in fields), str(source)) for source, fields in groups]
    rows = []
    for index, (labels, text) in enumerate(labelled):
        for other_index, (other_labels, other_text) in enumerate(labelled):
            if other_index != index and len(other_text) >= _QUOTED_MIN_CHARS and other_text in text:
                where = "above" if other_index < index else "below"
                text = text.replace(other_text, f"the source of {other_labels.lower()} {where}")
        rows.append((labels[:1].upper() + labels[1:], text))
    return rows


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


@register.filter
def first_sentence(text: str | None) -> str:
    """The first sentence of a description: the page's subtitle."""
    return _SENTENCE_END.split((text or "").strip(), maxsplit=1)[0]


@register.filter
def after_first_sentence(text: str | None) -> str:
    """What a description says after its first sentence (the About section, so it does not repeat the subtitle)."""
    parts = _SENTENCE_END.split((text or "").strip(), maxsplit=1)
    return parts[1] if len(parts) > 1 else ""


@register.simple_tag
def context_options(current: int | None, maximum: int | None = None) -> list[tuple[int, str]]:
    """The context control's (tokens, label) options; see catalog.forms.context_choices."""
    from catalog.forms import context_choices

    return context_choices(current=int(current) if current else None, maximum=int(maximum) if maximum else None)


@register.simple_tag(takes_context=True)
def extension_sections(context: template.Context, page: str, obj: object) -> str:
    """The sections other apps registered for this page with catalog.extensions (the community benchmarks of a model
    or a device), rendered with the page's context: the catalog names no app above it, not even in a template."""
    from django.template.loader import render_to_string
    from django.utils.safestring import mark_safe

    from catalog import extensions

    request = context.get("request")
    parts = [
        render_to_string(section.template, {**context.flatten(), **section.context(obj)}, request=request)
        for section in extensions.sections(page)
    ]
    return mark_safe("".join(parts))  # each part is a rendered, auto-escaped template
