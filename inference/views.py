"""The live demo page: a form posts the settings, the answer is a fragment that opens the SSE stream."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlencode

from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_POST

from inference.engine import READY, Engine, GenerationParams, get_engine
from inference.forms import GenerateForm, VisionForm
from inference.hosts import this_host
from inference.slots import (
    SIGNING_SALT,  # noqa: F401 (tests and tools sign tickets with it)
    TICKET_MAX_AGE_S,  # noqa: F401
    Busy,
    DemoGate,
    Slots,
    TicketRefused,
    client_address,
    issue_ticket,
    redeem_ticket,
)
from inference.vision import MAX_UPLOAD_BYTES


def safe_reverse(name: str, *args: Any) -> str | None:
    """Other apps' URLs, hidden when that app does not provide them (yet)."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


def host_description() -> str:
    return this_host().description


def submit_url(metrics: dict[str, Any]) -> str | None:
    """A prefilled community benchmark submission for a finished run (llama-bench field names)."""
    base = safe_reverse("benchmarks:submit")
    if base is None or not metrics.get("tokens_generated"):
        return None
    engine = get_engine()
    source = engine.source
    params = {
        "model_slug": engine.settings.model_slug,
        "quant": engine.quant_label,
        "runtime": "rigfit",
        "backend": "cpu",
        "n_prompt": metrics.get("prompt_tokens", 0),
        "n_gen": metrics.get("tokens_generated", 0),
        "avg_ts": round(metrics.get("decode_tps") or 0.0, 2),
        "prompt_tps": round(metrics.get("prompt_tps") or 0.0, 2),
        "ttft_ms": round(metrics.get("ttft_ms") or 0.0, 1),
        "n_threads": engine.settings.n_threads,
        "model_filename": source.filename if source else "",
        "cpu_info": host_description(),
        # The catalog device the probe matched to this server: the one-click submission needs no typing.
        "hardware": this_host().hardware_slug,
    }
    if not params["avg_ts"]:
        return None
    return f"{base}?{urlencode(params)}"


def catalog_model_name(slug: str) -> str | None:
    """The catalog's name for the demo model; None where the catalog is absent or does not list it."""
    try:
        from catalog.models import Model

        return Model.objects.filter(slug=slug).values_list("name", flat=True).first()
    except (ImportError, LookupError, DatabaseError):  # the demo needs no catalog (issue 5): degrade to the slug
        return None


def _page_context(form: GenerateForm) -> dict[str, Any]:
    engine = get_engine()
    slug = engine.settings.model_slug
    return {
        "form": form,
        "status": engine.status(),
        "model_url": safe_reverse("catalog:model_detail", slug),
        "model_slug": slug,
        "model_name": catalog_model_name(slug),
        "hardware": host_description(),
        "vision": vision_context(),
        "vision_form": VisionForm(),
    }


def vision_context() -> dict[str, Any]:
    from inference.vision import vision_status

    return vision_status()


def demo_gate(engine: Engine) -> DemoGate:
    """The text demo's admission (inference.slots): this process's slots, the shared limits of every process."""
    from inference.streaming import READY_WAIT_S

    settings = engine.settings
    return DemoGate(
        slots=engine.slots,
        rate=settings.rate,
        rate_window_s=settings.rate_window_s,
        lease_s=READY_WAIT_S + settings.max_wall_s,  # the longest a run holds its slot: the model's load, then the run
        queue_timeout_s=settings.queue_timeout_s,
    )


_vision_slots: Slots | None = None
_vision_slots_lock = threading.Lock()


def vision_gate(engine: Engine) -> DemoGate:
    """The vision endpoint's admission: the same per-client rate (one count shared with the text demo) and one run
    per client at a time; its own slots, as many as the text demo's."""
    global _vision_slots
    settings = engine.settings
    with _vision_slots_lock:
        if _vision_slots is None or _vision_slots.limit != settings.max_concurrent:
            _vision_slots = Slots(settings.max_concurrent, settings.max_queue)
    return DemoGate(
        slots=_vision_slots,
        rate=settings.rate,
        rate_window_s=settings.rate_window_s,
        lease_s=settings.max_wall_s,
        queue_timeout_s=settings.queue_timeout_s,
        scope="vision",
    )


def busy_response(request: HttpRequest, exc: Busy) -> HttpResponse:
    """The busy fragment (429 or 503) with Retry-After: the page swaps it in place of the run."""
    response = render(request, "inference/_busy.html", {"message": str(exc)}, status=exc.status)
    response["Retry-After"] = str(exc.retry_after_s)
    return response


def _demo_enabled(engine: Engine) -> None:
    if not engine.settings.enabled:  # RIGFIT_DEMO_ENABLED=0: another host serves the demo (docs/operations.md)
        raise Http404("The live demo does not run on this host.")


@require_GET
def demo(request: HttpRequest) -> HttpResponse:
    engine = get_engine()
    _demo_enabled(engine)
    form = GenerateForm(max_new_tokens_limit=engine.settings.max_new_tokens)
    return render(request, "inference/demo.html", _page_context(form))


@require_GET
def status(request: HttpRequest) -> HttpResponse:
    _demo_enabled(get_engine())
    return render(request, "inference/_status.html", {"status": get_engine().status()})


@require_POST
def generate(request: HttpRequest) -> HttpResponse:
    """Validate the settings, then answer the fragment that opens the stream (or the form with its errors, 422, or
    the busy message with Retry-After, 429/503, when the run could not start now)."""
    engine = get_engine()
    _demo_enabled(engine)
    form = GenerateForm(request.POST, max_new_tokens_limit=engine.settings.max_new_tokens)
    if form.is_valid() and engine.state == READY:
        n_tokens = engine.count_tokens(form.cleaned_data["prompt"])
        if n_tokens > engine.settings.max_prompt_tokens:
            limit = engine.settings.max_prompt_tokens
            form.add_error("prompt", f"The prompt has {n_tokens} tokens; the limit is {limit}.")
    if not form.is_valid():
        response = render(request, "inference/_form.html", {"form": form}, status=422)
        response["HX-Retarget"] = "#demo-form"  # the form comes back with its errors, in place
        response["HX-Reswap"] = "innerHTML"
        return response
    try:  # a refusal the stream would meet: said now, before any stream opens
        demo_gate(engine).check_and_charge(client_address(request))
    except Busy as exc:
        return busy_response(request, exc)
    if engine.state not in (READY,):
        engine.start_loading()
    stream_url = f"{reverse('inference:stream')}?{urlencode({'t': issue_ticket(form.cleaned_data)})}"
    return render(request, "inference/_run.html", {"stream_url": stream_url, "form": form})


def _text_refusal(message: str, status: int, retry_after_s: int | None = None) -> HttpResponse:
    response = HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    if retry_after_s is not None:
        response["Retry-After"] = str(retry_after_s)
    return response


@require_GET
def stream(request: HttpRequest) -> HttpResponse:
    """The event stream of one run, for a ticket `generate` signed; each ticket opens one stream, once.

    Everything that can refuse the run is decided before the stream starts, so a refusal is a status code with
    Retry-After (429 busy or over the client's limits, 503 the wait timed out or the limit store is down, 410 the
    ticket was used, 400 it is forged or expired), never a 200 with an error inside the stream.
    """
    engine = get_engine()
    _demo_enabled(engine)
    try:
        data = redeem_ticket(request.GET.get("t", ""))
    except TicketRefused as exc:
        return _text_refusal(str(exc), exc.status)
    except Busy as exc:
        return _text_refusal(str(exc), exc.status, exc.retry_after_s)
    form = GenerateForm(data, max_new_tokens_limit=engine.settings.max_new_tokens)
    if not form.is_valid():
        return _text_refusal("Invalid settings.", 422)
    params = GenerationParams(**form.cleaned_data)
    # Under ASGI this sync view runs on Django's one thread for sync code: it must not wait there for a slot, so a
    # busy demo refuses at once instead of queueing (WSGI, the production server, queues in the request's thread).
    wait_s = 0.0 if hasattr(request, "scope") else None
    try:
        admission = demo_gate(engine).admit(client_address(request), wait_s=wait_s)
    except Busy as exc:
        return _text_refusal(str(exc), exc.status, exc.retry_after_s)

    def extra_for(metrics: dict[str, Any]) -> dict[str, Any]:
        return {"submit_url": submit_url(metrics)}

    from inference import streaming

    body: Any = streaming.sync_events(engine, params, admission=admission, extra_for=extra_for)
    if hasattr(request, "scope"):  # ASGI buffers a sync iterator whole
        body = streaming.in_thread(body)
    response = StreamingHttpResponse(streaming.releasing(body, admission), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response


@require_POST
def vision(request: HttpRequest) -> HttpResponse:
    """Caption / query / detect / point on an uploaded image (422 for a bad upload, 503 when no VLM is set up)."""
    from inference.vision import ImageError, check_image, get_vision, vision_status

    engine = get_engine()
    _demo_enabled(engine)
    vlm = get_vision()
    if vlm is None:
        context = {"vision": vision_status()}
        return render(request, "inference/_vision_result.html", context, status=503)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_UPLOAD_BYTES + 64 * 1024:  # refuse before Django spools a huge body to disk
        return HttpResponse("The upload is larger than 10 MB.", status=413)
    form = VisionForm(request.POST, request.FILES)
    checked = None
    if form.is_valid():
        upload = form.cleaned_data["image"]
        if upload.size > MAX_UPLOAD_BYTES:
            form.add_error("image", f"The file is {upload.size / 1e6:.1f} MB; the limit is 10 MB.")
        else:
            try:
                checked = check_image(upload.read())
            except ImageError as exc:
                form.add_error("image", str(exc))
    if checked is None:
        return render(request, "inference/_vision_result.html", {"form": form}, status=422)
    try:
        admission = vision_gate(engine).enter(client_address(request))
    except Busy as exc:
        return busy_response(request, exc)
    try:
        answer = vlm.ask(checked, form.cleaned_data["task"], form.cleaned_data["text"])
    finally:
        admission.release()
    return render(request, "inference/_vision_result.html", {"answer": answer, "image": checked})
