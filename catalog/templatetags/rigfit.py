"""Formatting for figures on the pages: units are always stated (GB = 10^9 bytes, GiB = 2^30)."""

from __future__ import annotations

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
