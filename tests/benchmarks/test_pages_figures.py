"""Community-benchmark figures read like the rest of the site's: thousands grouped (a UX review found "12227.5"
beside the model page's "2,082 tok/s")."""

from __future__ import annotations

import pytest

from tests.benchmarks.conftest import make_run

pytestmark = pytest.mark.django_db


def test_it_groups_thousands_in_the_leaderboards_medians(client, gemma, gpu, user):
    # Prompt processing on a fast GPU runs in the thousands of tokens/sec: two pp512 runs, median (12,000 + 12,455) / 2.
    for value in (12_000.0, 12_455.0):
        make_run(
            user=user,
            hardware="test-gpu-1008",
            backend="cuda",
            n_prompt=512,
            n_gen=0,
            avg_ts=value,
            stddev_ts=1_250.0,
            samples_ts=[],
        )
    make_run(user=user, hardware="test-gpu-1008", backend="cuda", avg_ts=300.0, samples_ts=[])
    html = client.get("/benchmarks/").text
    assert "12,227.5" in html and "12227.5" not in html
    assert "<strong>300.0</strong>" in html  # under a thousand: as before
    # The list of every accepted run, each with its own mean and standard deviation.
    assert '>12,455.0</a> <small class="muted">± 1,250.0</small>' in html


def test_the_submit_form_labels_its_fields_in_words(client):
    # Django's labels from the field names read "N prompt", "N gen" and "Os" (UX review).
    html = client.get("/benchmarks/submit/").text
    assert "Prompt tokens (n_prompt)" in html and "Generated tokens (n_gen)" in html
    assert html.count(">Operating system<") == 2  # the run form and the llama-bench form
    assert ">N prompt<" not in html and ">Os<" not in html


def test_a_prompt_runs_page_explains_why_it_passes_the_decode_limit(client, gemma, gpu, user):
    # A pp512 run at 12,000 t/s beside "Physical decode limit: 4,000 t/s" read as a contradiction (UX review).
    run = make_run(
        user=user, hardware="test-gpu-1008", backend="cuda", n_prompt=512, n_gen=0, avg_ts=12_000.0, samples_ts=[]
    )
    html = client.get(f"/benchmarks/runs/{run.pk}/").text
    assert "Physical decode limit" in html and "data-prompt-test" in html
    tg = make_run(user=user, hardware="test-gpu-1008", backend="cuda", avg_ts=300.0, samples_ts=[])
    html = client.get(f"/benchmarks/runs/{tg.pk}/").text
    assert "this run reaches" in html and "data-prompt-test" not in html


def test_a_cpu_runs_page_shows_zero_gpu_layers_as_zero(client, gemma, epyc, user):
    # "GPU layers ?" for a run that said -ngl 0: Django's `default` treats 0 as missing.
    run = make_run(user=user, n_gpu_layers=0)
    html = client.get(f"/benchmarks/runs/{run.pk}/").text
    assert "threads 2, GPU layers 0," in html
