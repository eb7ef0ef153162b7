"""The /probe/ page: the server's hardware from the detection code, with only the Sources boundary faked."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import make_hardware
from tests.probe.fakes import MIB, FakeNVML, FakePsutil, FakeSources

pytestmark = pytest.mark.django_db


def fake_machine(monkeypatch, **kwargs):
    monkeypatch.setattr("probe.detect.Sources", lambda: FakeSources(**kwargs))


def test_it_shows_the_gpu_and_its_catalog_match(client, monkeypatch, django_assert_max_num_queries):
    make_hardware(name="NVIDIA GeForce RTX 4090", slug="rtx-4090")
    make_hardware(name="NVIDIA GeForce RTX 4080", slug="rtx-4080")
    gpu = {"name": "NVIDIA GeForce RTX 4090", "total": 24564 * MIB, "free": 20000 * MIB}
    fake_machine(monkeypatch, nvml=FakeNVML([gpu]), psutil=FakePsutil())
    with django_assert_max_num_queries(2):
        response = client.get(reverse("probe:host"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "AMD Ryzen 9 7950X 16-Core Processor" in html
    assert "NVIDIA GeForce RTX 4090" in html and "CUDA 12.4" in html and "PCIe 4.0 x16" in html
    assert 'href="/hardware/rtx-4090/"' in html
    assert "data-detect-hardware" in html


def test_it_shows_a_cpu_only_server_and_what_it_could_not_read(client, monkeypatch):
    fake_machine(monkeypatch, nvml=FakeNVML([], fail_init=True), psutil=FakePsutil())
    html = client.get(reverse("probe:host")).content.decode()
    assert "No GPU: the demo runs on the CPU." in html
    assert "No catalog device matches this machine" in html
    assert "Driver Not Loaded" in html


def test_it_renders_on_this_real_machine(client):
    assert client.get(reverse("probe:host")).status_code == 200


def test_it_refuses_post(client):
    assert client.post(reverse("probe:host")).status_code == 405


def test_it_tells_the_demo_what_it_runs_on_without_the_demo_importing_the_probe(monkeypatch):
    from inference import hosts
    from probe.views import server_host

    make_hardware(name="NVIDIA GeForce RTX 4090", slug="rtx-4090")
    gpu = {"name": "NVIDIA GeForce RTX 4090", "total": 24564 * MIB, "free": 20000 * MIB}
    fake_machine(monkeypatch, nvml=FakeNVML([gpu]), psutil=FakePsutil())
    hosts.register_host_provider(server_host)  # as ProbeConfig.ready() does; also forgets an earlier answer
    try:
        found = hosts.this_host()
        assert (found.hardware_slug, found.hardware_name) == ("rtx-4090", "NVIDIA GeForce RTX 4090")
        assert "NVIDIA GeForce RTX 4090" in found.description
    finally:
        hosts.register_host_provider(server_host)


def test_the_demo_says_unknown_hardware_when_detection_fails():
    from inference import hosts
    from probe.views import server_host

    def broken() -> hosts.Host:
        raise OSError("no /proc here")

    hosts.register_host_provider(broken)
    try:
        assert hosts.this_host() == hosts.UNKNOWN
    finally:
        hosts.register_host_provider(server_host)


def test_the_demos_one_click_submission_names_the_servers_catalog_device(monkeypatch):
    from urllib.parse import parse_qs, urlsplit

    from inference import hosts
    from inference.views import submit_url
    from probe.views import server_host

    make_hardware(name="NVIDIA GeForce RTX 4090", slug="rtx-4090")
    gpu = {"name": "NVIDIA GeForce RTX 4090", "total": 24564 * MIB, "free": 20000 * MIB}
    fake_machine(monkeypatch, nvml=FakeNVML([gpu]), psutil=FakePsutil())
    hosts.register_host_provider(server_host)
    try:
        url = submit_url({"tokens_generated": 128, "prompt_tokens": 6, "decode_tps": 88.4, "prompt_tps": 150.0})
    finally:
        hosts.register_host_provider(server_host)
    query = parse_qs(urlsplit(url).query)
    assert query["hardware"] == ["rtx-4090"]  # the form's required Hardware field is filled
    assert query["avg_ts"] == ["88.4"] and query["n_gen"] == ["128"]
