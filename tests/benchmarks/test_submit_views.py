from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse

from benchmarks.models import BenchmarkRun, Status
from tests.benchmarks.conftest import read_fixture, run_data

pytestmark = pytest.mark.django_db
SUBMIT = "/benchmarks/submit/"


def form_post(data):
    out = dict(data)
    out["samples_ts"] = ", ".join(str(v) for v in out.get("samples_ts", []))
    return out


def test_it_prefills_the_form_from_query_parameters(client, gemma):
    assert reverse("benchmarks:submit") == SUBMIT
    response = client.get(SUBMIT, {"model_slug": "gemma-3-270m", "quant": "Q4_K_M", "avg_ts": "54.2", "n_gen": "128"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'value="gemma-3-270m"' in html and 'value="54.2"' in html
    assert "will wait for a moderator" in html


def test_an_anonymous_submission_is_stored_as_pending_and_shown(client, gemma, epyc):
    response = client.post(SUBMIT, form_post(run_data()), follow=True)
    run = BenchmarkRun.objects.get()
    assert run.status == Status.PENDING and run.channel == "web" and run.submitter is None
    assert response.redirect_chain[-1][0] == run.get_absolute_url()
    html = response.content.decode()
    assert "Thank you: your run is stored." in html
    assert "Pending review" in html and "once a moderator accepts it" in html


def test_a_signed_in_submission_is_accepted_when_it_passes(client, gemma, epyc, user):
    client.force_login(user)
    response = client.post(SUBMIT, form_post(run_data()), follow=True)
    assert BenchmarkRun.objects.get().status == Status.ACCEPTED
    assert "now counts in the medians" in response.content.decode()


def test_it_shows_field_errors_with_422(client, gemma, epyc):
    response = client.post(SUBMIT, form_post(run_data(avg_ts="-5", stddev_ts="abc")))
    assert response.status_code == 422
    html = response.content.decode()
    assert 'id="field-avg_ts"' in html and "Must be greater than zero." in html
    assert "Enter a number." in html
    assert BenchmarkRun.objects.count() == 0


def test_it_answers_409_to_a_resubmission(client, gemma, epyc):
    client.post(SUBMIT, form_post(run_data()))
    response = client.post(SUBMIT, form_post(run_data()))
    assert response.status_code == 409
    assert "submitted before" in response.content.decode()
    assert BenchmarkRun.objects.count() == 1


def test_unknown_hardware_is_held_for_review(client, gemma, epyc, user):
    client.force_login(user)
    client.post(SUBMIT, form_post(run_data(hardware="My Homebuilt Cluster")))
    run = BenchmarkRun.objects.get()
    assert run.hardware is None and run.hardware_name == "My Homebuilt Cluster"
    assert run.status == Status.PENDING and "not in the catalog" in run.status_reason


def test_the_preview_compares_with_runs_on_the_same_hardware_and_stores_nothing(client, gemma, epyc, user):
    client.force_login(user)
    client.post(SUBMIT, form_post(run_data(avg_ts=48.0, samples_ts=[])))
    response = client.post(
        reverse("benchmarks:preview"), form_post(run_data(avg_ts=51.0, samples_ts=[])), HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "would be <strong>accepted" in html.lower() or "accepted</strong>" in html.lower()
    assert "48.0" in html  # the other run on the same hardware
    assert BenchmarkRun.objects.count() == 1


def test_the_preview_lists_field_errors(client, gemma, epyc):
    response = client.post(reverse("benchmarks:preview"), form_post(run_data(avg_ts="")))
    assert "Fix these before sending" in response.content.decode() and "avg_ts" in response.content.decode()
    assert client.get(reverse("benchmarks:preview")).status_code == 405


def test_it_takes_pasted_llama_bench_output(client, gemma, epyc):
    response = client.post(
        reverse("benchmarks:submit_llama_bench"),
        {"output": read_fixture("gemma3-270m-q4_k_m-cpu.jsonl"), "hardware": "test-epyc"},
    )
    assert response.status_code == 201
    assert BenchmarkRun.objects.filter(status=Status.PENDING).count() == 2
    assert "2 runs stored" in response.content.decode()


def test_it_takes_an_uploaded_llama_bench_file(client, gemma, epyc):
    upload = SimpleUploadedFile("bench.json", read_fixture("gemma3-270m-q4_k_m-cpu.json").encode(), "application/json")
    response = client.post(reverse("benchmarks:submit_llama_bench"), {"upload": upload, "hardware": "test-epyc"})
    assert response.status_code == 201
    assert sorted(BenchmarkRun.objects.values_list("test", flat=True)) == ["pp", "tg"]


def test_it_explains_unreadable_output(client, gemma, epyc):
    response = client.post(reverse("benchmarks:submit_llama_bench"), {"output": "garbage", "hardware": "test-epyc"})
    assert response.status_code == 422
    assert "not valid JSON" in response.content.decode()


def test_it_says_when_it_cannot_recognise_the_model(client, gemma, epyc):
    text = (
        read_fixture("gemma3-270m-q4_k_m-cpu.json")
        .replace("268098176", "999")
        .replace("gemma-3-270m-q4_k_m", "x-q4_k_m")
    )
    text = text.replace("gemma3 270M", "mystery")
    response = client.post(reverse("benchmarks:submit_llama_bench"), {"output": text, "hardware": "test-epyc"})
    assert response.status_code == 422
    assert "Could not recognise the model" in response.content.decode()


@override_settings(RIGFIT_BENCH_RATE_IP=(1, 60))
def test_web_submissions_are_rate_limited(client, gemma, epyc):
    client.post(SUBMIT, form_post(run_data()))
    response = client.post(SUBMIT, form_post(run_data(avg_ts=51.0, samples_ts=[])))
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1


def test_run_pages_answer_404_for_unknown_runs(client, db):
    assert client.get("/benchmarks/runs/424242/").status_code == 404
