"""Benchmark forms take names as people type them (issue 13): models by name, devices as their systems name them
(probe.matching), the llama-bench form's own element ids, the leaderboard's filters and empty state, and the demo's
one-click submission prefilled with this server's hardware."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from benchmarks import llamabench
from benchmarks.forms import LlamaBenchForm, RunForm
from benchmarks.models import BenchmarkRun, Status
from catalog.models import HardwareKind
from tests.benchmarks.conftest import make_run, read_fixture, run_data
from tests.factories import make_hardware
from tests.probe.fakes import FakePsutil, FakeSources

pytestmark = pytest.mark.django_db


@pytest.fixture
def rtx4060(db):
    # The catalog spells it without the vendor's brand words; NVML and llama-bench print "NVIDIA GeForce RTX 4060".
    return make_hardware(
        name="RTX 4060", slug="rtx-4060", vendor="NVIDIA", memory_bytes=8 * 1024**3, bandwidth_gbps=272.0
    )


def gpu_output(gpu_info: str) -> str:
    """The CPU fixture's tests, as if run with CUDA on the named GPU."""
    records = [json.loads(line) for line in read_fixture("gemma3-270m-q4_k_m-cpu.jsonl").splitlines() if line.strip()]
    for record in records:
        record.update({"backends": "CUDA", "gpu_info": gpu_info, "n_gpu_layers": 99})
    return "\n".join(json.dumps(record) for record in records)


# --- models by name ---------------------------------------------------------------------------------------------


def test_it_accepts_the_model_name_people_type(gemma, epyc):
    form = RunForm(run_data(model_slug="Gemma 3 270M"))
    assert form.is_valid(), form.errors
    assert form.cleaned_data["model_slug"] == gemma


def test_it_accepts_a_model_name_in_any_case_and_punctuation(gemma, epyc):
    form = RunForm(run_data(model_slug="gemma-3 270m"))
    assert form.is_valid(), form.errors
    assert form.cleaned_data["model_slug"] == gemma


def test_it_suggests_catalog_names_for_an_unknown_model(gemma, epyc):
    form = RunForm(run_data(model_slug="Gemma 3 27M"))
    assert not form.is_valid()
    assert form.errors["model_slug"] == ["No model 'Gemma 3 27M' in the catalog. Did you mean 'Gemma 3 270M'?"]


def test_it_matches_names_by_repository_and_by_a_unique_part():
    candidates = [
        ("llama-3-1-8b", "Llama 3.1 8B Instruct", "meta-llama/Llama-3.1-8B-Instruct"),
        ("llama-3-1-70b", "Llama 3.1 70B Instruct", "meta-llama/Llama-3.1-70B-Instruct"),
        ("meta-llama-3-8b", "Meta Llama 3 8B", "meta-llama/Meta-Llama-3-8B"),
    ]
    assert llamabench.match_model_name("Llama 3.1 8B Instruct", candidates) == "llama-3-1-8b"
    assert llamabench.match_model_name("meta-llama/Llama-3.1-70B-Instruct", candidates) == "llama-3-1-70b"
    assert llamabench.match_model_name("Llama-3.1-8B-Instruct", candidates) == "llama-3-1-8b"
    assert llamabench.match_model_name("llama 3.1 8b", candidates) == "llama-3-1-8b"  # only one name holds all
    assert llamabench.match_model_name("Llama 8B", candidates) is None  # two names hold these words
    assert llamabench.match_model_name("Mistral 7B", candidates) is None
    assert llamabench.match_model_name("  ", candidates) is None


# --- devices as their systems name them -----------------------------------------------------------------------


def test_it_matches_a_device_name_through_the_probe_matching(gemma, rtx4060):
    form = RunForm(run_data(hardware="NVIDIA GeForce RTX 4060", backend="cuda"))
    assert form.is_valid(), form.errors
    assert form.cleaned_data["hardware"] == "rtx-4060"


def test_it_keeps_an_unknown_device_name_as_given(gemma, rtx4060):
    form = RunForm(run_data(hardware="NVIDIA GeForce RTX 4060 Ti", backend="cuda"))
    assert form.is_valid(), form.errors
    assert form.cleaned_data["hardware"] == "NVIDIA GeForce RTX 4060 Ti"


def test_it_remembers_a_device_name_until_the_catalog_changes(gemma, rtx4060, django_assert_num_queries):
    from benchmarks.forms import find_hardware_slug

    assert find_hardware_slug("NVIDIA GeForce RTX 4060 Ti") is None
    with django_assert_num_queries(0):  # every test of a pasted output asks for the same name
        assert find_hardware_slug("NVIDIA GeForce RTX 4060 Ti") is None
    make_hardware(name="RTX 4060 Ti", slug="rtx-4060-ti", vendor="NVIDIA", memory_bytes=8 * 1024**3)
    assert find_hardware_slug("NVIDIA GeForce RTX 4060 Ti") == "rtx-4060-ti"


def test_it_matches_the_typed_device_of_pasted_llama_bench_output(client, gemma, rtx4060):
    response = client.post(
        reverse("benchmarks:submit_llama_bench"),
        {"output": gpu_output("NVIDIA GeForce RTX 4060"), "hardware": "NVIDIA GeForce RTX 4060"},
    )
    assert response.status_code == 201, response.content.decode()[:2000]
    runs = BenchmarkRun.objects.all()
    assert runs.count() == 2
    assert {run.hardware_id for run in runs} == {rtx4060.pk}


def test_it_takes_the_device_from_the_outputs_gpu_info_when_the_field_is_empty(client, gemma, rtx4060):
    response = client.post(
        reverse("benchmarks:submit_llama_bench"), {"output": gpu_output("NVIDIA GeForce RTX 4060"), "hardware": ""}
    )
    assert response.status_code == 201, response.content.decode()[:2000]
    assert {run.hardware_id for run in BenchmarkRun.objects.all()} == {rtx4060.pk}


def test_it_asks_for_the_device_when_the_output_names_none(client, gemma, rtx4060):
    text = gpu_output("").replace('"cpu_info": "AMD EPYC"', '"cpu_info": ""')
    response = client.post(reverse("benchmarks:submit_llama_bench"), {"output": text, "hardware": ""})
    assert response.status_code == 422
    assert "The output names no device; enter the hardware." in response.content.decode()


def test_it_takes_the_model_by_name_in_the_llama_bench_form(gemma, epyc):
    form = LlamaBenchForm({"output": "x", "model_slug": "Gemma 3 270M", "hardware": "test-epyc"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["model_slug"] == "gemma-3-270m"


# --- the submit page ----------------------------------------------------------------------------------------------


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.label_for: list[str] = []
        self.inputs: dict[str, dict[str, str]] = {}
        self.options: dict[str, list[str]] = {}
        self._datalist: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if "id" in values:
            self.ids.append(values["id"])
        if tag == "label" and "for" in values:
            self.label_for.append(values["for"])
        if tag in ("input", "select", "textarea") and "id" in values:
            self.inputs[values["id"]] = values
        if tag == "datalist":
            self._datalist = values.get("id")
            self.options[self._datalist or ""] = []
        if tag == "option" and self._datalist:
            self.options[self._datalist].append(values.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "datalist":
            self._datalist = None


def parse_page(html: str) -> _Ids:
    parser = _Ids()
    parser.feed(html)
    return parser


def test_it_gives_the_two_forms_their_own_element_ids(client, gemma, epyc):
    page = parse_page(client.get(reverse("benchmarks:submit")).content.decode())
    duplicates = sorted({i for i in page.ids if page.ids.count(i) > 1})
    assert duplicates == []
    for name in ("model_slug", "quant", "hardware", "os"):
        assert f"id_{name}" in page.inputs
        assert f"llamabench_{name}" in page.inputs
    assert all(target in page.ids for target in page.label_for)  # every label points at an element


def test_it_suggests_catalog_names_with_a_datalist(client, gemma, epyc, rtx4060):
    rtx4060.popular = True
    rtx4060.save()
    page = parse_page(client.get(reverse("benchmarks:submit")).content.decode())
    assert page.inputs["id_model_slug"]["list"] == "catalog-model-names"
    assert page.inputs["llamabench_model_slug"]["list"] == "catalog-model-names"
    assert page.inputs["id_hardware"]["list"] == "catalog-hardware-names"
    assert page.options["catalog-model-names"] == ["Gemma 3 270M"]
    assert page.options["catalog-hardware-names"] == ["RTX 4060"]  # popular; Test EPYC has no runs


def test_it_stores_a_run_posted_with_names(client, gemma, rtx4060):
    data = run_data(model_slug="Gemma 3 270M", hardware="NVIDIA GeForce RTX 4060", backend="cuda")
    data["samples_ts"] = "49, 50, 51"
    response = client.post(reverse("benchmarks:submit"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    run = BenchmarkRun.objects.get()
    assert (run.model_id, run.hardware_id, run.status) == (gemma.pk, rtx4060.pk, Status.PENDING)


# --- the leaderboard ----------------------------------------------------------------------------------------------


def test_it_keeps_the_filters_and_sort_in_the_page_links_without_repeating_the_page(client, gemma, epyc, user):
    for index in range(51):
        make_run(user=user, avg_ts=40.0 + index * 0.1, samples_ts=[], stddev_ts=0.0)
    url = reverse("benchmarks:leaderboard")
    html = client.get(url, {"model": "Gemma 3 270M", "sort": "slowest", "page": "2"}).content.decode()
    assert "Page 2 of 2 (51 runs)" in html
    assert 'href="?model=Gemma+3+270M&amp;sort=slowest&amp;page=1"' in html
    assert re.search(r'href="[^"]*\?model=Gemma\+3\+270M&amp;sort=slowest">Download CSV', html)
    first = client.get(url, {"model": "Gemma 3 270M", "sort": "slowest"}).content.decode()
    # Slowest first: the first run listed is the one at 40.0 t/s.
    assert re.search(r">40\.0</a>", first.split("All accepted runs")[1][:3000])


def test_it_filters_by_a_typed_model_name(client, gemma, epyc, user):
    make_run(user=user)
    html = client.get(reverse("benchmarks:leaderboard"), {"model": "gemma 3 270m"}).content.decode()
    assert "Page 1 of 1 (1 runs)" in html


def test_it_says_which_filter_hides_the_runs(client, gemma, epyc, user):
    make_run(user=user)
    html = client.get(reverse("benchmarks:leaderboard"), {"model": "gemma-3-270m", "quant": "Q8_0"}).content.decode()
    assert "No accepted runs match" in html
    assert "model = gemma-3-270m, quant = Q8_0" in html
    assert '<a href="?model=gemma-3-270m">1 run without the quant filter</a>' in html
    assert "Clear all filters" in html


def test_it_explains_how_to_add_runs_when_there_are_none(client, db):
    html = client.get(reverse("benchmarks:leaderboard")).content.decode()
    assert "No accepted runs yet." in html
    assert "llama-bench -m model.gguf -o json" in html


def test_it_names_an_unknown_filter_value_instead_of_ignoring_it(client, gemma, epyc, user):
    make_run(user=user)
    html = client.get(reverse("benchmarks:leaderboard"), {"model": "No Such Model"}).content.decode()
    assert "No model &#x27;No Such Model&#x27; in the catalog. (that filter is not applied)" in html


# --- the demo's one-click submission ------------------------------------------------------------------------------


def test_it_prefills_the_demo_run_with_this_servers_hardware_and_lands_a_pending_run(client, gemma, monkeypatch):
    # The server, as the probe detects it: the fake's /proc/cpuinfo names "AMD Ryzen 9 7950X 16-Core Processor".
    monkeypatch.setattr("probe.detect.Sources", lambda: FakeSources(nvml=None, psutil=FakePsutil()))
    ryzen = make_hardware(
        name="Ryzen 9 7950X", slug="ryzen-9-7950x", vendor="AMD", kind=HardwareKind.CPU, bandwidth_gbps=83.2,
        fp16_tflops=None, memory_bytes=64 * 1024**3,
    )  # fmt: skip
    # What the demo's "Submit this run" link carries (inference.views.submit_url): no hardware.
    query = {
        "model_slug": "gemma-3-270m", "quant": "Q4_K_M", "runtime": "rigfit", "backend": "cpu", "n_prompt": "12",
        "n_gen": "64", "avg_ts": "31.5", "prompt_tps": "120.0", "ttft_ms": "100.0", "n_threads": "2",
        "cpu_info": "AMD Ryzen 9 7950X 16-Core Processor · 16 cores / 32 threads · AVX-512 · 64.0 GiB RAM",
    }  # fmt: skip
    page = parse_page(client.get(reverse("benchmarks:submit"), query).content.decode())
    assert page.inputs["id_hardware"]["value"] == "ryzen-9-7950x"
    # The click on "Submit run": every field of the one-run form, as the browser sends it.
    data = {}
    for element_id, attrs in page.inputs.items():
        if element_id.startswith("id_") and attrs.get("value"):
            data[element_id[3:]] = attrs["value"]
    data.update({"runtime": "rigfit", "backend": "cpu"})  # <select>s: their prefilled choice
    response = client.post(reverse("benchmarks:submit"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    run = BenchmarkRun.objects.get()
    assert (run.hardware_id, run.status, run.avg_ts) == (ryzen.pk, Status.PENDING, 31.5)


def test_it_prefills_the_detected_name_when_the_catalog_lacks_the_server(client, gemma, monkeypatch):
    monkeypatch.setattr("probe.detect.Sources", lambda: FakeSources(nvml=None, psutil=FakePsutil()))
    response = client.get(reverse("benchmarks:submit"), {"runtime": "rigfit", "backend": "cpu"})
    page = parse_page(response.content.decode())
    assert page.inputs["id_hardware"]["value"] == "AMD Ryzen 9 7950X 16-Core Processor"


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_keeps_filters_and_sort_through_htmx_and_the_page_links(live_server, gemma, epyc, user):
    from tests.browser import chromium_page

    for index in range(51):
        make_run(user=user, avg_ts=40.0 + index * 0.1, samples_ts=[], stddev_ts=0.0)
    with chromium_page() as page:
        page.goto(f"{live_server.url}/benchmarks/?model=Gemma+3+270M")
        page.select_option("select[name=sort]", "slowest")  # htmx swaps the results and pushes the URL
        page.wait_for_function("() => location.search.includes('sort=slowest')")
        assert parse_qs(urlsplit(page.url).query) == {"model": ["Gemma 3 270M"], "sort": ["slowest"]}
        following = page.locator("#bench-results a", has_text="Next").get_attribute("href")
        assert parse_qs(following.lstrip("?")) == {"model": ["Gemma 3 270M"], "sort": ["slowest"], "page": ["2"]}
        with page.expect_navigation(wait_until="load"):
            page.click("#bench-results a:has-text('Next')")
        assert "Page 2 of 2 (51 runs)" in page.locator("#bench-results").inner_text()
        assert page.locator("select[name=sort]").input_value() == "slowest"
