"""JSON API for the demo: status, and a non-streaming generate with the same caps and busy answers as the page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from ninja import Router, Schema
from pydantic import Field

from inference.engine import READY, Busy, GenerationParams, get_engine
from inference.forms import MAX_PROMPT_CHARS, TEMPERATURE_MAX

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
    load_seconds: float | None
    rss_bytes: int
    model_rss_bytes: int | None
    running: int
    waiting: int
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
    ttft_ms: float
    prompt_tps: float
    decode_tps: float
    total_s: float
    peak_rss_bytes: int
    stop_reason: str


class GenerateOut(Schema):
    text: str
    metrics: MetricsOut


class ErrorOut(Schema):
    """The API's one error shape: a message, and for invalid input (422) the fields at fault."""

    message: str
    errors: list[dict[str, Any]] | None = Field(None, description="Per-field problems of invalid input.")


def _error(status: int, message: str, *, retry_after_s: int | None = None) -> JsonResponse:
    response = JsonResponse({"message": message}, status=status)
    if retry_after_s is not None:
        response["Retry-After"] = str(retry_after_s)
    return response


@router.get("/status", response=StatusOut)
def status(request: HttpRequest) -> dict[str, Any]:
    return get_engine().status()


@router.post("/generate", response={200: GenerateOut, 422: ErrorOut, 429: ErrorOut, 503: ErrorOut})
def generate(request: HttpRequest, payload: GenerateIn) -> Any:
    """Generate (not streamed). 422 on bad parameters or too long a prompt, 429/503 with Retry-After when busy."""
    engine = get_engine()
    if engine.state != READY:
        engine.start_loading()
        return _error(503, engine.status_text(), retry_after_s=15)
    if payload.max_new_tokens > engine.settings.max_new_tokens:
        return _error(422, f"max_new_tokens must be at most {engine.settings.max_new_tokens}")
    n_tokens = engine.count_tokens(payload.prompt)
    if n_tokens > engine.settings.max_prompt_tokens:
        return _error(422, f"the prompt has {n_tokens} tokens; the limit is {engine.settings.max_prompt_tokens}")
    try:
        engine.slots.acquire(engine.settings.queue_timeout_s)
    except Busy as exc:
        return _error(exc.status, str(exc), retry_after_s=exc.retry_after_s)
    try:
        text, metrics = engine.generate_text(GenerationParams(**payload.dict()))
    finally:
        engine.slots.release()
    return {"text": text, "metrics": metrics.as_dict()}
