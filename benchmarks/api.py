"""Benchmark endpoints of the JSON API, mounted at /api/benchmarks by config/api.py.

POST needs a per-user API token (`Authorization: Bearer rfb_...`, made on /benchmarks/tokens/). Answers:
201 stored (status accepted, flagged or pending, with the reason), 401 no or bad token, 409 same payload stored
before, 413 body too large, 422 field errors, 429 rate limited (with Retry-After), 503 the rate limiter's store
is unreachable (with Retry-After). Every error is {"message": ...}.
"""

# No `from __future__ import annotations`: django-ninja reads the annotations at import time.
from datetime import datetime
from typing import Any, Literal

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from ninja import Field, Query, Router, Schema, Status
from ninja.security import HttpBearer
from pydantic import field_validator

from benchmarks import forms, llamabench, services
from benchmarks.models import ApiToken, BenchmarkRun

router = Router(tags=["benchmarks"])

MAX_BODY_BYTES = 64 * 1024
MAX_PAGE = settings.RIGFIT_API_MAX_PAGE  # an offset past 2^63 was a 500; config.middleware bounds every API list


class TokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> ApiToken | None:
        found = services.token_authenticate(raw=token)
        if found is not None:
            request.user = found.user
        return found


class Message(Schema):
    message: str


class ValidationErrorOut(Schema):
    message: str
    errors: list[dict[str, Any]] = Field(default_factory=list, description="The fields at fault: loc, msg, type.")


class DuplicateOut(Schema):
    message: str
    id: int | None


class RunIn(Schema):
    """One run, in llama-bench's field names. `avg_ts` is the test's mean tokens/sec; for a pp+tg test it is the
    generation speed only when `prompt_tps` is also given (otherwise llama-bench's combined rate)."""

    model_slug: str = Field(..., examples=["gemma-3-270m"])
    quant: str = Field(..., examples=["Q4_K_M"])
    hardware: str = Field(..., description="Catalog hardware slug or name; unknown names are held for review.")
    runtime: str = Field(..., examples=["llama.cpp"])
    backend: str = Field(..., examples=["cuda"])
    avg_ts: float
    stddev_ts: float | None = None
    n_prompt: int = 0
    n_gen: int = 0
    n_depth: int = 0
    samples_ts: list[float] = []
    samples_ns: list[int] = []
    prompt_tps: float | None = None
    ttft_ms: float | None = None
    runtime_version: str = ""
    build_commit: str = ""
    n_gpu_layers: int | None = None
    n_threads: int | None = None
    n_batch: int | None = None
    n_ubatch: int | None = None
    n_ctx: int | None = None
    type_k: str = "f16"
    type_v: str = "f16"
    flash_attn: bool | None = None
    power_watts: float | None = None
    test_time: datetime | None = Field(
        None, description="When the test ran: not before 2023-01-01, not in the future (5 minutes of clock skew)."
    )
    os: str = ""
    cpu_info: str = ""
    gpu_info: str = ""
    ram_bytes: int | None = Field(None, ge=1, le=forms.MAX_BYTES)
    driver: str = ""
    model_filename: str = ""
    model_type: str = ""
    model_size: int | None = Field(None, ge=1, le=forms.MAX_BYTES)
    model_n_params: int | None = Field(None, ge=1, le=forms.MAX_PARAMS)
    notes: str = ""
    channel: Literal["api", "cli"] = Field("api", description="'cli' when sent by a command-line tool.")

    @field_validator("test_time")
    @classmethod
    def _bounded_test_time(cls, value: datetime | None) -> datetime | None:
        try:
            forms.check_test_time(value)
        except DjangoValidationError as exc:
            raise ValueError(exc.messages[0]) from None
        return value


class LlamaBenchIn(Schema):
    output: str = Field(..., description="The text printed by `llama-bench -o json` or `-o jsonl`.")
    hardware: str
    model_slug: str = ""
    quant: str = ""
    os: str = ""
    channel: Literal["api", "cli"] = "api"


class RunOut(Schema):
    id: int
    url: str
    model: str
    quant: str
    hardware: str | None
    hardware_name: str
    runtime: str
    runtime_version: str
    build_commit: str
    backend: str
    test: str
    n_prompt: int
    n_gen: int
    n_depth: int
    avg_ts: float
    stddev_ts: float
    samples_ts: list[float]
    prompt_tps: float | None
    decode_tps: float | None
    prefill_tps: float | None
    ttft_ms: float | None
    n_gpu_layers: int | None
    n_threads: int | None
    n_batch: int | None
    n_ubatch: int | None
    type_k: str
    type_v: str
    flash_attn: bool | None
    test_time: datetime | None
    submitted_at: datetime
    channel: str
    status: str
    status_reason: str

    @staticmethod
    def resolve_url(obj: BenchmarkRun) -> str:
        return obj.get_absolute_url()

    @staticmethod
    def resolve_model(obj: BenchmarkRun) -> str:
        return obj.model.slug

    @staticmethod
    def resolve_quant(obj: BenchmarkRun) -> str:
        return obj.quant_name

    @staticmethod
    def resolve_hardware(obj: BenchmarkRun) -> str | None:
        return obj.hardware.slug if obj.hardware_id else None


class SubmitOut(Schema):
    id: int
    url: str
    status: str
    reason: str
    roofline_tps: float | None
    prefill_ceiling_tps: float | None
    z_score: float | None


class BatchOut(Schema):
    message: str
    stored: list[SubmitOut]
    duplicates: list[int | None]
    errors: list[str]


class RunPage(Schema):
    items: list[RunOut]
    count: int
    page: int
    page_size: int


class RunFilters(Schema):
    model: str = ""
    quant: str = ""
    hardware: str = ""
    runtime: str = ""
    backend: str = ""
    test: str = Field("", pattern="^(|pp|tg|pg)$")
    page: int = Field(1, ge=1, le=MAX_PAGE)
    page_size: int = Field(50, ge=1, le=500)


def _too_many(exc: services.RateLimited) -> HttpResponse:
    response = JsonResponse({"message": str(exc)}, status=429)
    response["Retry-After"] = str(exc.retry_after)
    return response


def _unavailable(exc: services.LimiterUnavailable) -> HttpResponse:
    response = JsonResponse({"message": str(exc)}, status=503)
    response["Retry-After"] = str(exc.retry_after)
    return response


def _invalid(errors: dict[str, list[str]]) -> HttpResponse:
    items = [
        {"loc": ["body", name], "msg": message, "type": "value_error"}
        for name, msgs in errors.items()
        for message in msgs
    ]
    return JsonResponse({"message": "Invalid input.", "errors": items}, status=422)


def _submitted(run: BenchmarkRun, verdict: services.Verdict) -> dict[str, Any]:
    return {
        "id": run.pk,
        "url": run.get_absolute_url(),
        "status": run.status,
        "reason": run.status_reason,
        "roofline_tps": verdict.roofline_tps,
        "prefill_ceiling_tps": verdict.prefill_ceiling_tps,
        "z_score": verdict.z_score,
    }


def _guard(request: HttpRequest) -> HttpResponse | None:
    if len(request.body) > MAX_BODY_BYTES:
        return JsonResponse({"message": f"The body is larger than {MAX_BODY_BYTES // 1024} KiB."}, status=413)
    try:
        services.check_submission_rate(request=request, token=request.auth)
    except services.RateLimited as exc:
        return _too_many(exc)
    except services.LimiterUnavailable as exc:
        return _unavailable(exc)
    return None


@router.post(
    "",
    auth=TokenAuth(),
    response={
        201: SubmitOut,
        401: Message,
        409: DuplicateOut,
        413: Message,
        422: ValidationErrorOut,
        429: Message,
        503: Message,
    },
    summary="Submit one benchmark run",
)
def submit(request: HttpRequest, payload: RunIn) -> Any:
    refused = _guard(request)
    if refused is not None:
        return refused
    try:
        data = payload.dict()
        channel = data.pop("channel")
        run, verdict = services.submit_run(data=data, channel=channel, submitter=request.auth.user)
    except services.Invalid as exc:
        return _invalid(exc.errors)
    except services.Duplicate as exc:
        return Status(409, {"message": "This run was submitted before.", "id": exc.run_id})
    return Status(201, _submitted(run, verdict))


@router.post(
    "/llama-bench",
    auth=TokenAuth(),
    response={
        201: BatchOut,
        401: Message,
        409: BatchOut,
        413: Message,
        422: ValidationErrorOut,
        429: Message,
        503: Message,
    },
    summary="Submit llama-bench -o json / -o jsonl output; every test becomes a run",
)
def submit_llama_bench(request: HttpRequest, payload: LlamaBenchIn) -> Any:
    if len(payload.output.encode()) > llamabench.MAX_OUTPUT_BYTES:
        return Status(413, {"message": f"The output is larger than {llamabench.MAX_OUTPUT_BYTES // 1024} KiB."})

    def charge(runs: int) -> None:  # every test is a run against the limits, counted before any is stored
        services.check_submission_rate(request=request, token=request.auth, runs=runs)

    try:
        result = services.submit_llama_bench(
            text=payload.output,
            hardware=payload.hardware,
            model_slug=payload.model_slug,
            quant=payload.quant,
            extra={"os": payload.os} if payload.os else None,
            channel=payload.channel,
            submitter=request.auth.user,
            charge=charge,
        )
    except services.RateLimited as exc:
        return _too_many(exc)
    except services.LimiterUnavailable as exc:
        return _unavailable(exc)
    except (llamabench.LlamaBenchError, services.Unrecognised) as exc:
        return _invalid({"output": [str(exc)]})
    message = f"{len(result.stored)} stored, {len(result.duplicates)} submitted before, {len(result.errors)} refused."
    body = {
        "message": message,
        "stored": [_submitted(run, verdict) for run, verdict in result.stored],
        "duplicates": result.duplicates,
        "errors": result.errors,
    }
    if result.stored:
        return Status(201, body)
    if result.duplicates and not result.errors:
        return Status(409, body)
    return _invalid({"output": result.errors or ["No test could be stored."]})


@router.get("", response=RunPage, summary="Accepted runs, filtered and paginated")
def list_runs(request: HttpRequest, filters: Query[RunFilters]) -> dict[str, Any]:
    page_size = min(filters.page_size, getattr(settings, "RIGFIT_API_MAX_PAGE_SIZE", 100))
    queryset = (
        BenchmarkRun.objects.accepted()
        .filtered(
            model=filters.model,
            quant=filters.quant,
            hardware=filters.hardware,
            runtime=filters.runtime,
            backend=filters.backend,
            test=filters.test,
        )
        .with_relations()
    )
    count = queryset.count()
    start = (filters.page - 1) * page_size
    return {
        "items": list(queryset[start : start + page_size]),
        "count": count,
        "page": filters.page,
        "page_size": page_size,
    }


@router.get(
    "/{run_id}", response={200: RunOut, 404: Message}, summary="One run (rejected ones only to their submitter)"
)
def get_run(request: HttpRequest, run_id: int) -> Any:
    run = get_object_or_404(BenchmarkRun.objects.with_relations(), pk=run_id)
    if not services.run_visible_to(run=run, user=request.user):
        raise Http404("No such run.")
    return run
