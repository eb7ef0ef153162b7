"""Server-side SVG plots: no JavaScript, no CDN. Built with xml.etree, so every text node and attribute is escaped.

Each series is a `<g class="series" data-series="...">` group, and every mark carries its figures in data-*
attributes, so tests (and anyone curious) can read the values back.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

SVG_NS = "http://www.w3.org/2000/svg"
WIDTH, HEIGHT = 720, 360
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 36, 140  # bars: room for rotated device names
# The bar chart's device names run down-left from under each bar at LABEL_ANGLE degrees, in LABEL_FONT_PX text
# (LABEL_CHAR_PX a generous width per character). Each is cut to what fits above the picture's bottom edge, and the
# bars move right far enough that the first name ends inside the left edge: names cut at the edge lost their start,
# the device, and kept "· Llama 2 7B Q4_0".
LABEL_ANGLE, LABEL_FONT_PX, LABEL_CHAR_PX, LABEL_GAP = 35.0, 10, 6.0, 14
SCATTER_BOTTOM = 56  # the scatter's x axis has numbers and one label only


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    median: float
    low: float
    high: float
    count: int


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float
    label: str


def _fmt(value: float) -> str:
    return f"{value:.1f}"


def nice_max(value: float) -> float:
    """A round axis maximum at or above `value` (1, 1.2, 1.6, 2, 2.5, 3, 4, 5, 6, 8 x 10^n): close enough that the
    data fills most of the plot, and a quarter of it is still a round tick."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 1.2, 1.6, 2, 2.5, 3, 4, 5, 6, 8, 10):
        candidate = step * 10**exponent
        if candidate >= value:
            return float(candidate)
    return float(10 ** (exponent + 1))


def _svg(title: str, description: str) -> ET.Element:
    ET.register_namespace("", SVG_NS)
    svg = ET.Element(
        "svg",
        {
            "xmlns": SVG_NS,
            "viewBox": f"0 0 {WIDTH} {HEIGHT}",
            "width": str(WIDTH),
            "height": str(HEIGHT),
            "role": "img",
            "class": "bench-plot",
            "font-family": "system-ui, sans-serif",
            "font-size": "12",
        },
    )
    ET.SubElement(svg, "title").text = title
    ET.SubElement(svg, "desc").text = description
    ET.SubElement(svg, "text", {"x": str(MARGIN_LEFT), "y": "20", "font-weight": "bold"}).text = title
    return svg


def _y_axis(svg: ET.Element, y_max: float, label: str, *, bottom: int = MARGIN_BOTTOM) -> None:
    plot_h = HEIGHT - MARGIN_TOP - bottom
    axis = ET.SubElement(svg, "g", {"class": "axis y"})
    for i in range(5):
        value = y_max * i / 4
        y = MARGIN_TOP + plot_h - plot_h * i / 4
        ET.SubElement(
            axis,
            "line",
            {"x1": str(MARGIN_LEFT), "x2": str(WIDTH - MARGIN_RIGHT), "y1": _fmt(y), "y2": _fmt(y), "stroke": "#ddd"},
        )
        ET.SubElement(
            axis, "text", {"x": str(MARGIN_LEFT - 6), "y": _fmt(y + 4), "text-anchor": "end"}
        ).text = f"{value:g}"
    ET.SubElement(
        axis,
        "text",
        {
            "x": "14",
            "y": _fmt(MARGIN_TOP + plot_h / 2),
            "transform": f"rotate(-90 14 {_fmt(MARGIN_TOP + plot_h / 2)})",
            "text-anchor": "middle",
        },
    ).text = label


def _x_tick(x: float) -> dict[str, str]:
    """Where an x-axis number goes: centred under its tick, except at the plot's right end, where a centred label
    ran past the picture (the accuracy plot's 100000 drew as "10000"): that one ends at the picture's edge."""
    if x >= WIDTH - MARGIN_RIGHT - 0.5:
        return {"x": str(WIDTH - 2), "text-anchor": "end"}
    return {"x": _fmt(x), "text-anchor": "middle"}


def _empty(svg: ET.Element, message: str) -> str:
    ET.SubElement(
        svg, "text", {"x": str(WIDTH // 2), "y": str(HEIGHT // 2), "text-anchor": "middle", "class": "empty"}
    ).text = message
    return ET.tostring(svg, encoding="unicode")


def bars_by_hardware(bars: Sequence[Bar], *, title: str, y_label: str = "tokens/sec") -> str:
    """Median tokens/sec per device as bars, with a spread bar from the slowest to the fastest accepted run."""
    svg = _svg(title, "Bars: median tokens/sec of accepted runs per device; whiskers: slowest to fastest run.")
    if not bars:
        return _empty(svg, "No accepted runs yet.")
    y_max = nice_max(max(bar.high for bar in bars))
    _y_axis(svg, y_max, y_label)
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    sin, cos = math.sin(math.radians(LABEL_ANGLE)), math.cos(math.radians(LABEL_ANGLE))
    label_px = (MARGIN_BOTTOM - LABEL_GAP - 5) / sin  # the longest name that stays above the bottom edge
    max_chars = int(label_px / LABEL_CHAR_PX)
    longest = min(max(len(bar.label) for bar in bars), max_chars) * LABEL_CHAR_PX
    # The first bar's centre must sit `longest x cos` right of the picture's edge; with n bars in (plot_w - pad),
    # that centre is MARGIN_LEFT + pad + (plot_w - pad) / 2n.
    n = len(bars)
    pad = max(0.0, (2 + longest * cos - MARGIN_LEFT - plot_w / (2 * n)) / (1 - 1 / (2 * n)))
    slot = (plot_w - pad) / n
    width = min(slot * 0.6, 60)

    def y_of(value: float) -> float:
        return MARGIN_TOP + plot_h - plot_h * value / y_max

    series = ET.SubElement(svg, "g", {"class": "series", "data-series": "median"})
    spreads = ET.SubElement(svg, "g", {"class": "series", "data-series": "spread"})
    labels = ET.SubElement(svg, "g", {"class": "axis x"})
    for i, bar in enumerate(bars):
        cx = MARGIN_LEFT + pad + slot * (i + 0.5)
        rect = ET.SubElement(
            series,
            "rect",
            {
                "x": _fmt(cx - width / 2),
                "y": _fmt(y_of(bar.median)),
                "width": _fmt(width),
                "height": _fmt(plot_h * bar.median / y_max),
                "fill": "#3a7bd5",
                "data-label": bar.label,
                "data-value": f"{bar.median:.6g}",
                "data-count": str(bar.count),
            },
        )
        ET.SubElement(rect, "title").text = f"{bar.label}: median {bar.median:.1f} t/s over {bar.count} run(s)"
        ET.SubElement(
            spreads,
            "line",
            {
                "x1": _fmt(cx),
                "x2": _fmt(cx),
                "y1": _fmt(y_of(bar.low)),
                "y2": _fmt(y_of(bar.high)),
                "stroke": "#222",
                "stroke-width": "2",
                "data-label": bar.label,
                "data-low": f"{bar.low:.6g}",
                "data-high": f"{bar.high:.6g}",
            },
        )
        label_y = HEIGHT - MARGIN_BOTTOM + LABEL_GAP
        ET.SubElement(
            labels,
            "text",
            {
                "x": _fmt(cx),
                "y": _fmt(label_y),
                "text-anchor": "end",
                "font-size": str(LABEL_FONT_PX),
                "transform": f"rotate(-{LABEL_ANGLE:g} {_fmt(cx)} {_fmt(label_y)})",
            },
        ).text = bar.label if len(bar.label) <= max_chars else bar.label[: max_chars - 1] + "…"
    return ET.tostring(svg, encoding="unicode")


def bandwidth_scatter(
    points: Sequence[Point], *, roofline: Sequence[tuple[float, float]], title: str, y_label: str = "decode tokens/sec"
) -> str:
    """Measured decode tokens/sec against the device's memory bandwidth, with the roofline (physical limit) line."""
    svg = _svg(
        title,
        "Dots: accepted decode runs, by the device's memory bandwidth (GB/s). Line: the roofline, bandwidth over the "
        "bytes one token reads; no run can sit above it.",
    )
    if not points:
        return _empty(svg, "No accepted decode runs yet.")
    x_max = nice_max(max([p.x for p in points] + [x for x, _ in roofline]))
    y_values = [p.y for p in points] + [y for x, y in roofline if x <= x_max]
    y_max = nice_max(max(y_values))
    _y_axis(svg, y_max, y_label, bottom=SCATTER_BOTTOM)
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - SCATTER_BOTTOM

    def xy(x: float, y: float) -> tuple[float, float]:
        return MARGIN_LEFT + plot_w * x / x_max, MARGIN_TOP + plot_h - plot_h * min(y, y_max) / y_max

    x_axis = ET.SubElement(svg, "g", {"class": "axis x"})
    for i in range(5):
        value = x_max * i / 4
        x, _ = xy(value, 0)
        ET.SubElement(x_axis, "text", {**_x_tick(x), "y": str(HEIGHT - SCATTER_BOTTOM + 16)}).text = f"{value:g}"
    ET.SubElement(
        x_axis,
        "text",
        {"x": _fmt(MARGIN_LEFT + plot_w / 2), "y": str(HEIGHT - SCATTER_BOTTOM + 36), "text-anchor": "middle"},
    ).text = "memory bandwidth, GB/s (10^9 bytes/s)"
    if roofline:
        line = ET.SubElement(svg, "g", {"class": "series", "data-series": "roofline"})
        coords = " ".join(f"{_fmt(a)},{_fmt(b)}" for a, b in (xy(x, y) for x, y in roofline))
        ET.SubElement(
            line,
            "polyline",
            {
                "points": coords,
                "fill": "none",
                "stroke": "#d9534f",
                "stroke-width": "2",
                "stroke-dasharray": "6 4",
                "data-values": " ".join(f"{x:.6g}:{y:.6g}" for x, y in roofline),
            },
        )
    dots = ET.SubElement(svg, "g", {"class": "series", "data-series": "runs"})
    for point in points:
        cx, cy = xy(point.x, point.y)
        circle = ET.SubElement(
            dots,
            "circle",
            {
                "cx": _fmt(cx),
                "cy": _fmt(cy),
                "r": "5",
                "fill": "#3a7bd5",
                "data-label": point.label,
                "data-x": f"{point.x:.6g}",
                "data-y": f"{point.y:.6g}",
            },
        )
        ET.SubElement(circle, "title").text = f"{point.label}: {point.y:.1f} t/s at {point.x:g} GB/s"
        # Labels of dots in the right third go to the left of the dot, so they stay inside the picture.
        right = cx > MARGIN_LEFT + plot_w * 2 / 3
        ET.SubElement(
            dots,
            "text",
            {
                "x": _fmt(cx - 7 if right else cx + 7),
                "y": _fmt(cy - 7),
                "font-size": "10",
                "class": "point-label",
                "text-anchor": "end" if right else "start",
            },
        ).text = point.label[:40]
    # Top left of the plot: the roofline rises to the right, and the title runs along the top.
    legend = ET.SubElement(svg, "g", {"class": "legend"})
    legend_x = MARGIN_LEFT + 10
    if roofline:
        ET.SubElement(
            legend,
            "line",
            {
                "x1": str(legend_x),
                "x2": str(legend_x + 24),
                "y1": str(MARGIN_TOP + 12),
                "y2": str(MARGIN_TOP + 12),
                "stroke": "#d9534f",
                "stroke-width": "2",
                "stroke-dasharray": "6 4",
            },
        )
        ET.SubElement(
            legend, "text", {"x": str(legend_x + 30), "y": str(MARGIN_TOP + 16)}
        ).text = "roofline (physical limit)"
    return ET.tostring(svg, encoding="unicode")


# One colour per backend on the accuracy plot (each at least 3:1 against white, as graphics need).
BACKEND_COLOURS = {
    "cuda": "#2e7d32",
    "rocm": "#c62828",
    "metal": "#1f5fa8",
    "vulkan": "#8e44ad",
    "sycl": "#b35c00",
    "cpu": "#555555",
}


def estimate_scatter(points: Sequence[tuple[Point, str]], *, title: str, band_pct: float = 25.0) -> str:
    """Estimate (y) against measured (x) tokens/sec on log axes, one dot per held-out run coloured by backend, with
    the line where they are equal and the +-band_pct corridor around it."""
    svg = _svg(
        title,
        f"Dots: each run's measured tokens/sec (x) and the estimate made without its source (y), log scales. Solid "
        f"line: estimate equals measured; dashed: {band_pct:g} % either side.",
    )
    if not points:
        return _empty(svg, "No accepted runs to compare with yet.")
    values = [p.x for p, _ in points] + [p.y for p, _ in points]
    low = 10 ** math.floor(math.log10(max(min(values), 1e-3)))
    high = 10 ** math.ceil(math.log10(max(values)))
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - SCATTER_BOTTOM
    span = math.log10(high) - math.log10(low)

    def xy(x: float, y: float) -> tuple[float, float]:
        fx = (math.log10(min(max(x, low), high)) - math.log10(low)) / span
        fy = (math.log10(min(max(y, low), high)) - math.log10(low)) / span
        return MARGIN_LEFT + plot_w * fx, MARGIN_TOP + plot_h - plot_h * fy

    axes = ET.SubElement(svg, "g", {"class": "axis"})
    decade = low
    while decade <= high * 1.0001:
        x, y = xy(decade, decade)
        ET.SubElement(axes, "text", {**_x_tick(x), "y": str(HEIGHT - SCATTER_BOTTOM + 16)}).text = f"{decade:g}"
        ET.SubElement(
            axes, "text", {"x": str(MARGIN_LEFT - 6), "y": _fmt(y + 4), "text-anchor": "end"}
        ).text = f"{decade:g}"
        decade *= 10
    ET.SubElement(
        axes,
        "text",
        {"x": _fmt(MARGIN_LEFT + plot_w / 2), "y": str(HEIGHT - SCATTER_BOTTOM + 36), "text-anchor": "middle"},
    ).text = "measured tokens/sec"
    ET.SubElement(
        axes,
        "text",
        {
            "x": "14",
            "y": _fmt(MARGIN_TOP + plot_h / 2),
            "transform": f"rotate(-90 14 {_fmt(MARGIN_TOP + plot_h / 2)})",
            "text-anchor": "middle",
        },
    ).text = "estimated tokens/sec"
    lines = ET.SubElement(svg, "g", {"class": "series", "data-series": "equal"})
    for factor, dash in ((1.0, ""), (1 + band_pct / 100, "5 4"), (1 - band_pct / 100, "5 4")):
        (x1, y1), (x2, y2) = xy(low, low * factor), xy(high, high * factor)
        attrs = {"x1": _fmt(x1), "y1": _fmt(y1), "x2": _fmt(x2), "y2": _fmt(y2), "stroke": "#333", "stroke-width": "1"}
        if dash:
            attrs["stroke-dasharray"] = dash
        ET.SubElement(lines, "line", attrs)
    dots = ET.SubElement(svg, "g", {"class": "series", "data-series": "runs"})
    for point, backend in points:
        cx, cy = xy(point.x, point.y)
        circle = ET.SubElement(
            dots,
            "circle",
            {
                "cx": _fmt(cx),
                "cy": _fmt(cy),
                "r": "3",
                "fill": BACKEND_COLOURS.get(backend, "#555555"),
                "fill-opacity": "0.7",
                "data-backend": backend,
                "data-x": f"{point.x:.6g}",
                "data-y": f"{point.y:.6g}",
            },
        )
        ET.SubElement(circle, "title").text = f"{point.label}: measured {point.x:.1f}, estimated {point.y:.1f} t/s"
    legend = ET.SubElement(svg, "g", {"class": "legend"})
    shown = sorted({backend for _, backend in points})
    for i, backend in enumerate(shown):
        y = MARGIN_TOP + 12 + 16 * i
        ET.SubElement(
            legend,
            "circle",
            {"cx": str(MARGIN_LEFT + 14), "cy": str(y - 4), "r": "4", "fill": BACKEND_COLOURS.get(backend, "#555555")},
        )
        ET.SubElement(legend, "text", {"x": str(MARGIN_LEFT + 24), "y": str(y)}).text = backend
    return ET.tostring(svg, encoding="unicode")
