from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from benchmarks import plots
from tests.benchmarks.conftest import make_run

NS = {"svg": "http://www.w3.org/2000/svg"}


def series(svg: str, name: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    found = root.find(f".//svg:g[@data-series='{name}']", NS)
    assert found is not None, name
    return found


def test_the_bar_plot_has_a_bar_and_a_spread_per_device():
    bars = [plots.Bar("RTX 4090", 120.0, 100.0, 140.0, 3), plots.Bar("M2 Max", 60.0, 55.0, 61.0, 2)]
    svg = plots.bars_by_hardware(bars, title="Generation tokens/sec by hardware")
    rects = series(svg, "median").findall("svg:rect", NS)
    assert [(r.get("data-label"), float(r.get("data-value")), r.get("data-count")) for r in rects] == [
        ("RTX 4090", 120.0, "3"),
        ("M2 Max", 60.0, "2"),
    ]
    assert float(rects[0].get("height")) == pytest.approx(2 * float(rects[1].get("height")))
    lines = series(svg, "spread").findall("svg:line", NS)
    assert [(float(line.get("data-low")), float(line.get("data-high"))) for line in lines] == [(100, 140), (55, 61)]


def test_text_is_escaped():
    svg = plots.bars_by_hardware([plots.Bar("<script>alert(1)</script>", 1, 1, 1, 1)], title="a & b")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    ET.fromstring(svg)


def test_empty_plots_say_so():
    root = ET.fromstring(plots.bars_by_hardware([], title="t"))
    assert "No accepted runs yet." in "".join(root.itertext())


def test_the_bandwidth_plot_has_the_runs_and_the_roofline():
    points = [plots.Point(51.2, 40.0, "EPYC"), plots.Point(1008.0, 500.0, "4090")]
    roofline = [(100.0, 400.0), (1000.0, 4000.0)]
    svg = plots.bandwidth_scatter(points, roofline=roofline, title="Decode vs bandwidth")
    dots = series(svg, "runs").findall("svg:circle", NS)
    assert [(float(d.get("data-x")), float(d.get("data-y"))) for d in dots] == [(51.2, 40.0), (1008.0, 500.0)]
    line = series(svg, "roofline").find("svg:polyline", NS)
    assert line.get("data-values") == "100:400 1000:4000"
    assert len(line.get("points").split()) == 2


@pytest.mark.django_db
def test_the_plot_urls_serve_svg_from_accepted_runs(client, gemma, epyc, gpu, user):
    make_run(user=user, avg_ts=40.0, samples_ts=[])
    make_run(user=user, avg_ts=44.0, samples_ts=[])
    make_run(user=None, avg_ts=10.0, samples_ts=[])  # pending: not plotted
    response = client.get("/benchmarks/plots/by-hardware.svg", {"model": "gemma-3-270m"})
    assert response["Content-Type"].startswith("image/svg+xml")
    [bar] = series(response.content.decode(), "median").findall("svg:rect", NS)
    assert float(bar.get("data-value")) == 42.0 and bar.get("data-count") == "2"
    response = client.get("/benchmarks/plots/bandwidth.svg", {"model": "gemma-3-270m", "quant": "Q4_K_M"})
    svg = response.content.decode()
    assert len(series(svg, "runs").findall("svg:circle", NS)) == 2
    pairs = [p.split(":") for p in series(svg, "roofline").find("svg:polyline", NS).get("data-values").split()]
    ratios = [float(y) / float(x) for x, y in pairs]
    assert max(ratios) == pytest.approx(
        min(ratios), rel=1e-4
    )  # the roofline is a straight line through the origin: tps = bandwidth / bytes per token


@pytest.mark.parametrize(
    ("value", "expected"), [(106.6, 120.0), (85.3, 100.0), (0.42, 0.5), (7.1, 8.0), (250.0, 250.0), (0.0, 1.0)]
)
def test_it_rounds_the_axis_to_a_close_round_maximum(value, expected):
    assert plots.nice_max(value) == pytest.approx(expected)


def test_it_keeps_every_point_label_inside_the_picture():
    points = [plots.Point(120.0, 20.9, "Apple M4 16GB (llama.cpp)"), plots.Point(400.0, 46.2, "Apple M1 Max 64GB")]
    svg = plots.bandwidth_scatter(points, roofline=[(25.0, 5.3), (400.0, 85.3)], title="t")
    labels = series(svg, "runs").findall("svg:text", NS)
    left, right = labels
    assert left.get("text-anchor") == "start" and right.get("text-anchor") == "end"
    # a label drawn leftwards from the rightmost dot ends left of it; 6 px per character at 10 px is generous
    assert float(right.get("x")) - 6 * len(right.text) > 0
    assert float(right.get("x")) < plots.WIDTH


def test_it_draws_every_bar_label_inside_the_picture_from_its_first_character():
    # Twenty bars named "<device> · <model> <quant>" (34 characters, as on the leaderboard): each name runs down-left
    # from under its bar at 35 degrees, so its start sits len x w x cos 35 left of and len x w x sin 35 below its
    # anchor. With 6 px a character at 10 px (generous) every start must land inside the 720 x 360 picture; names
    # used to start left of x = 0 and below y = 360, so the device, the first words, were the part cut off.
    bars = [
        plots.Bar(f"GeForce RTX {5090 - i} · Llama 2 7B Q4_0", 200.0 - i, 190.0 - i, 210.0 - i, 1) for i in range(20)
    ]
    svg = plots.bars_by_hardware(bars, title="t")
    labels = ET.fromstring(svg).find(".//svg:g[@class='axis x']", NS).findall("svg:text", NS)
    assert len(labels) == 20
    cos, sin = math.cos(math.radians(35)), math.sin(math.radians(35))
    for label, bar in zip(labels, bars, strict=True):
        assert label.text == bar.label  # 34 characters fit whole
        length = 6 * len(label.text)
        assert float(label.get("x")) - length * cos >= 0
        assert float(label.get("y")) + length * sin <= plots.HEIGHT
    # A longer name is cut at its end, never at its start.
    long = plots.Bar("Apple M3 Ultra (80-core GPU) · Meta Llama 3 8B Instruct Q4_K_M", 90.0, 90.0, 90.0, 1)
    text = ET.fromstring(plots.bars_by_hardware([long], title="t")).find(".//svg:g[@class='axis x']/svg:text", NS)
    assert text.text.startswith("Apple M3 Ultra (80-core GPU)") and text.text.endswith("…")
    assert float(text.get("y")) + 6 * len(text.text) * sin <= plots.HEIGHT


def test_it_keeps_the_last_number_of_a_log_axis_inside_the_picture():
    # Prompt speeds up to 100,000 tokens/sec: the axis runs 10 ... 100000, and the last number, centred on the
    # plot's right end (704 px of 720), ran 18 px past the edge and read "10000".
    points = [(plots.Point(12.0, 15.0, ""), "metal"), (plots.Point(60_000.0, 80_000.0, ""), "cuda")]
    svg = plots.estimate_scatter(points, title="t")
    texts = list(ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text"))
    last = next(t for t in texts if t.text == "100000")  # the x axis's, drawn before the y axis's
    assert last.get("text-anchor") == "end" and float(last.get("x")) <= plots.WIDTH
    first = next(t for t in texts if t.text == "10")
    assert first.get("text-anchor") == "middle"  # the others stay centred under their ticks
