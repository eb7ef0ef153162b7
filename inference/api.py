"""JSON API for the demo: status, and a non-streaming generate with the same caps and busy answers as the page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from ninja import Router, Schema
from pydantic import Field

from inference.engine import READY, GenerationParams, get_engine
from inference.forms import MAX_PROMPT_CHARS, TEMPERATURE_MAX
from inference.slots import Busy, client_address

router = Router(tags=["inference"])


class StatusOut(Schema):
    state: str
    message: str
    error: str
    model_file: str
    quant: str
    weights: str
    output_head: str = Field("", description="How the output head is computed once loaded ('' before).")
    fast_path: str
    load_seconds: float | None = Field(None, description="Seconds from the start of the load to ready.")
    load_read_s: float | None = Field(None, description="Of load_seconds: reading the model files.")
    load_build_s: float | None = Field(None, description="Of load_seconds: building the decode step.")
    load_compile_s: float | None = Field(
        None, description="Of load_build_s: building (or importing the cached build of) the C++ step."
    )
    load_warmup_s: float | None = Field(None, description="Of load_seconds: the warm-up generation.")
    threads: int | None = Field(None, description="Decode threads chosen for the latest generation.")
    rss_bytes: int = Field(description="This process's resident memory now.")
    model_rss_bytes: int | None = Field(None, description="Resident memory the load added to this process.")
    running: int = Field(description="Generations running in this process.")
    waiting: int = Field(description="Requests of this process waiting for a slot.")
    max_concurrent: int
    max_queue: int
    max_prompt_tokens: int
    max_new_tokens: int
    last_stop_reason: str | None = None
    last_tokens_generated: int | None = None


class GenerateIn(Schema):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    max_new_tokens: int = Field(64, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0.0, le=TEMPERATURE_MAX)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = None


class MetricsOut(Schema):
    prompt_tokens: int
    tokens_generated: int
    ttft_ms: float = Field(description="From the start (after admission) to the first generated token.")
    prompt_tps: float = Field(description="Prompt tokens per second of prefill.")
    decode_tps: float = Field(description="Tokens after the first per second after the first.")
    total_s: float
    peak_rss_bytes: int = Field(description="The process's highest resident memory during this generation.")
    rss_before_bytes: int = Field(description="The process's resident memory when this generation started.")
    generation_rss_bytes: int = Field(0, description="peak_rss_bytes - rss_before_bytes: what this generation added.")
    stop_reason: str = Field(description="eos, max_new_tokens, wall_time or cancelled.")
    threads: list[int] = Field(default_factory=list, description="Decode thread counts used, in order.")


class GenerateOut(Schema):
    text: str
    metrics: MetricsOut


class ErrorOut(Schema):
    """The API's one error shape: a message, and for invalid input (422) the fields at fault."""

    message: str
    errors: list[dict[str, Any]] | None = Field(None, description="Per-field problems of invalid input.")


def _error(status: int, message: str, *, retry_after_s: int | None = None, field: str | None = None) -> JsonResponse:
    body: dict[str, Any] = {"message": message}
    if field is not None:  # the same per-field shape as the API's validation errors
        body["errors"] = [{"loc": ["body", "payload", field], "msg": message, "type": "value_error"}]
    response = JsonResponse(body, status=status)
    if retry_after_s is not None:
        response["Retry-After"] = str(retry_after_s)
    return response


@router.get("/status", response=StatusOut)
def status(request: HttpRequest) -> dict[str, Any]:
    return get_engine().status()


@router.post("/generate", response={200: GenerateOut, 404: ErrorOut, 422: ErrorOut, 429: ErrorOut, 503: ErrorOut})
def generate(request: HttpRequest, payload: GenerateIn) -> Any:
    """Generate (not streamed). 422 on bad parameters or too long a prompt; 429 with Retry-After over the client's
    limits (RIGFIT_DEMO_RATE per RIGFIT_DEMO_RATE_WINDOW_S, one run at a time) or when the queue is full; 503 with
    Retry-After while the model loads, when the wait for a slot times out or when the limit store is unreachable;
    404 on a host that does not serve the demo."""
    from inference.views import demo_gate

    engine = get_engine()
    if not engine.settings.enabled:
        return _error(404, "The live demo does not run on this host.")
    if engine.state != READY:
        engine.start_loading()
        return _error(503, engine.status_text(), retry_after_s=15)
    if payload.max_new_tokens > engine.settings.max_new_tokens:
        limit = engine.settings.max_new_tokens
        return _error(422, f"max_new_tokens must be at most {limit}", field="max_new_tokens")
    n_tokens = engine.count_tokens(payload.prompt)
    if n_tokens > engine.settings.max_prompt_tokens:
        limit = engine.settings.max_prompt_tokens
        return _error(422, f"the prompt has {n_tokens} tokens; the limit is {limit}", field="prompt")
    try:
        wait_s = 0.0 if hasattr(request, "scope") else None  # ASGI: see views.stream
        admission = demo_gate(engine).enter(client_address(request), wait_s=wait_s)
    except Busy as exc:
        return _error(exc.status, str(exc), retry_after_s=exc.retry_after_s)
    try:
        text, metrics = engine.generate_text(GenerationParams(**payload.dict()))
    finally:
        admission.release()
    return {"text": text, "metrics": metrics.as_dict()}
