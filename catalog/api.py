"""Catalog and fit endpoints of the JSON API (mounted at /api/ by config/api.py)."""

# No `from __future__ import annotations` here: django-ninja's @paginate needs the real Query[...] types.
import dataclasses
from collections.abc import Sequence
from typing import Any, Literal, overload

from django.conf import settings
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema
from ninja.errors import HttpError
from ninja.pagination import PageNumberPagination, paginate

from catalog import fit
from catalog.caching import cached_api
from catalog.howto import llama_cpp_flags
from catalog.importers import ConfigError, estimate_n_params, model_fields_from_hf_config
from catalog.models import Hardware, HardwareKind, Modality, Model, ParamBand, Quantization
from catalog.services import (
    LIST_DEFERRED,
    FitRow,
    best_fits,
    best_fits_of,
    device_spec_of,
    fit_for,
    fit_rows_of,
    fit_table,
    max_context_for,
    options_for,
    quant_choice,
)

router = Router(tags=["catalog"])

MAX_PAGE = settings.RIGFIT_API_MAX_PAGE_SIZE
KvTypeName = Literal["f16", "bf16", "f32", "q8_0", "q4_0"]


class Message(Schema):
    message: str


class ModelOut(Schema):
    slug: str
    name: str
    family: str
    publisher: str
    n_params: int
    n_active_params: int | None
    modality: str
    context_length: int
    license: str
    url: str

    @staticmethod
    def resolve_url(obj: Model) -> str:
        return obj.get_absolute_url()


class QuantOut(Schema):
    name: str
    format: str
    bits_per_weight: float | None
    file_bytes: int | None
    tensor_bytes: int | None
    perplexity_delta: float | None
    exact: bool
    source: str

    @staticmethod
    def resolve_exact(obj: Quantization) -> bool:
        return obj.exact_bytes is not None


class ModelDetailOut(ModelOut):
    source_repo: str
    source_revision: str
    description: str
    n_layers: int
    hidden_size: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab_size: int
    tied_embeddings: bool
    sliding_window: int | None
    swa_layers: list[int]
    kv_lora_rank: int | None
    n_experts: int | None
    n_experts_used: int | None
    vision_params: int | None
    image_tokens: int | None
    sources: dict[str, Any]
    quantizations: list[QuantOut]

    @staticmethod
    def resolve_quantizations(obj: Model) -> list[Quantization]:
        return list(obj.quantizations.all())


class HardwareOut(Schema):
    slug: str
    name: str
    vendor: str
    kind: str
    memory_bytes: int
    bandwidth_gbps: float
    fp16_tflops: float | None
    release_year: int | None
    source: str
    generation: str = Field(description='Architecture or chip generation ("ada", "rdna3", "apple-m2", "zen4", ...).')
    matrix_tflops: float | None = Field(
        description="Dense matrix TFLOP/s prompt processing runs on (FP16 with FP32 accumulate on tensor/matrix cores; "
        "the GPU FP16 rate on Apple; cores x SIMD FMA width x clock on a CPU)."
    )
    int8_tops: float | None = Field(description="Dense INT8 tensor TOPS.")
    gpu_cores: int | None = Field(description="Apple GPU cores.")
    cpu_cores: int | None
    memory_channels: int | None = Field(description="64-bit memory channels (CPUs).")
    memory_mts: int | None = Field(description="Memory transfer rate in MT/s (CPUs).")
    speed_source: str = Field(description="Citations for the speed figures.")
    url: str

    @staticmethod
    def resolve_url(obj: Hardware) -> str:
        return obj.get_absolute_url()


class ModelFilters(Schema):
    q: str = Field("", max_length=100)
    modality: Modality | None = None
    band: ParamBand | None = None
    license: str | None = Field(None, max_length=80)
    fits: str | None = Field(None, max_length=120, description="Hardware slug: only models that run on it.")
    ctx: int = Field(4096, ge=1, le=1_048_576)
    sort: Literal["params", "-params", "name", "-context"] = "params"


class HardwareFilters(Schema):
    q: str = Field("", max_length=100)
    kind: HardwareKind | None = None


class FitKnobs(Schema):
    ctx: int = Field(4096, ge=1, le=1_048_576, description="Context length in tokens.")
    kv_type: KvTypeName = "f16"
    users: int = Field(1, ge=1, le=256, description="Concurrent sequences, each with its own KV cache.")
    gpu_count: int = Field(1, ge=1, le=16)
    ram_gb: int = Field(32, ge=1, le=4096, description="System RAM for layers that do not fit the GPU.")

    def options(self) -> fit.FitOptions:
        return fit.FitOptions(
            ctx=self.ctx, kv_type=self.kv_type, users=self.users, system_ram_bytes=self.ram_gb * 1024**3
        )


class FitQuery(FitKnobs):
    model: str = Field(..., max_length=120, description="Model slug.")
    quant: str = Field("Q4_K_M", max_length=24, description="Quantization name, e.g. Q4_K_M.")
    hardware: str = Field(..., max_length=120, description="Hardware slug.")


class RecommendationOut(Schema):
    rule: str
    min_decode_tps: float
    recommended: str | None = Field(description="The quant the rule (`rule`) picks; None when none keeps the speed.")
    fastest: str | None = Field(description="Highest decode speed among the quants that run at all.")
    best_quality: str | None = Field(description="Highest quality among the quants that run at all.")


class FitOut(Schema):
    model: str
    quant: str
    hardware: str
    ctx: int = Field(description="Context used (the runtime's -c): the asked one, cut to the model's maximum.")
    ctx_asked: int = Field(description="The context the request asked for.")
    ctx_clamped: bool = Field(description="True when the asked context was above the model's maximum.")
    kv_type: str
    users: int
    gpu_count: int
    weights_bytes: int
    kv_cache_bytes: int
    compute_bytes: int
    overhead_bytes: int
    vision_bytes: int
    total_bytes: int
    needed_bytes: int = Field(description="Weights + KV + compute (once per GPU) + vision: total less the overhead.")
    usable_bytes: int = Field(description="Device capacity less the runtime overhead (once per GPU).")
    headroom_bytes: int = Field(description="usable_bytes - needed_bytes; the model fits entirely when >= 0.")
    verdict: str
    gpu_layers: int
    n_layers: int
    cpu_moe_layers: int = Field(
        0, description="MoE partial offload: layers whose routed experts stay in system RAM (llama.cpp --n-cpu-moe)."
    )
    est_decode_tps: float | None = Field(description="Decode tokens/s per user, with `users` sequences batched.")
    est_prefill_tps: float | None
    max_ctx: int | None = Field(description="Largest context (<= the model's maximum) at which this quant fits.")
    llama_cpp_flags: list[str] = Field(
        description="llama-server flags for this placement (-c, -np, -ngl, --n-cpu-moe, -ctk/-ctv)."
    )
    recommendation: RecommendationOut
    exact: list[str]
    estimated: list[str]


class BestFitOut(Schema):
    model: str
    name: str
    quant: str
    recommended: bool = Field(description="False when no quant keeps the speed and the fastest is shown instead.")
    ctx: int
    ctx_clamped: bool
    verdict: str
    total_bytes: int
    needed_bytes: int
    usable_bytes: int
    headroom_bytes: int
    gpu_layers: int
    est_decode_tps: float | None


class EstimateIn(FitKnobs):
    config: dict[str, Any] = Field(..., description="A Hugging Face config.json (text or with text_config).")
    quant: str = Field("Q4_K_M", max_length=24)
    bits_per_weight: float | None = Field(None, gt=0, le=32)
    hardware: str | None = Field(None, max_length=120)


class EstimateOut(Schema):
    n_params: int
    quant: str
    weights_bytes: int
    kv_cache_bytes: int
    compute_bytes: int
    overhead_bytes: int
    vision_bytes: int
    total_bytes: int
    estimated: list[str]
    hardware: str | None = None
    verdict: str | None = None
    needed_bytes: int | None = None
    usable_bytes: int | None = None
    headroom_bytes: int | None = None
    gpu_layers: int | None = None
    est_decode_tps: float | None = None
    est_prefill_tps: float | None = None


class BoundedPages(PageNumberPagination):
    """ninja's page-number pagination with `page` bounded in the schema (RIGFIT_API_MAX_PAGE): an offset past 2^63
    failed in the database as a 500. A page past the last is an empty page; `page_size` above the maximum is cut to
    it, as before."""

    class Input(Schema):
        page: int = Field(1, ge=1, le=settings.RIGFIT_API_MAX_PAGE)
        page_size: int | None = Field(None, ge=1, description=f"Items per page, at most {MAX_PAGE}.")


def get_or_404(queryset: Any, label: str, slug: str) -> Any:
    found = queryset.filter(slug=slug).first()
    if found is None:
        raise HttpError(404, f"Unknown {label} {slug!r}.")
    return found


MEMORY_FIELDS = ("weights_bytes", "kv_cache_bytes", "compute_bytes", "overhead_bytes", "vision_bytes")


def exact_fields(memory: fit.MemoryBreakdown) -> list[str]:
    """Figures that are not estimates; the total is exact only when every part of it is."""
    exact = [name for name in MEMORY_FIELDS if name not in memory.estimated]
    return [*exact, "total_bytes"] if len(exact) == len(MEMORY_FIELDS) else exact


def _memory_dict(memory: fit.MemoryBreakdown) -> dict[str, Any]:
    return {
        **{name: getattr(memory, name) for name in MEMORY_FIELDS},
        "total_bytes": memory.total_bytes,
        "estimated": sorted(memory.estimated),
    }


@router.get(
    "/models",
    response={200: list[ModelOut], 404: Message},
    summary="Search and filter the model catalog (404: `fits` names no known hardware)",
)
@paginate(BoundedPages, page_size=20, max_page_size=MAX_PAGE)
def list_models(request: HttpRequest, filters: Query[ModelFilters]):
    models = Model.objects.search(filters.q)
    if filters.modality:
        models = models.filter(modality=filters.modality)
    if filters.band:
        models = models.in_param_band(filters.band)
    if filters.license:
        models = models.filter(license__iexact=filters.license)
    ordering = {"params": "n_params", "-params": "-n_params", "name": "name", "-context": "-context_length"}
    models = models.order_by(ordering[filters.sort], "name")
    if filters.fits:
        hardware = get_or_404(Hardware.objects, "hardware", filters.fits)
        return models_that_run(models=models, hardware=hardware, options=fit.FitOptions(ctx=filters.ctx))
    return models


def models_that_run(*, models: Any, hardware: Hardware, options: fit.FitOptions) -> Sequence[Model]:
    """The filtered `models` that run on `hardware`, ranked as best_fits ranks them (full-GPU fits first, then larger
    models first), read from the device's shared fit table (catalog.services.fit_table, the hardware page's and
    /api/fits': every model x quant fitted at once, cached per data version) instead of fitting each model here."""
    return FitRankedModels(fit_rows_of(models, hardware=hardware, options=options))


class FitRankedModels(Sequence[Model]):
    """The models of fit-table rows, in the table's order. The paginator counts the rows and slices one page: only
    that page's models are read (one query), so a page costs the same whatever the catalog's size. A model deleted
    since the table was built drops out of its page."""

    def __init__(self, rows: list[FitRow]) -> None:
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> Model: ...
    @overload
    def __getitem__(self, index: slice) -> list[Model]: ...
    def __getitem__(self, index: int | slice) -> Model | list[Model]:
        if isinstance(index, int):
            return self[index : index + 1 or None][0]
        ids = [row[0] for row in self._rows[index]]
        found = Model.objects.defer(*LIST_DEFERRED).in_bulk(ids)
        return [found[pk] for pk in ids if pk in found]


@router.get("/models/{slug}", response={200: ModelDetailOut, 404: Message}, summary="One model with its quantizations")
@cached_api
def get_model(request: HttpRequest, slug: str):
    return get_or_404(Model.objects.with_quantizations(), "model", slug)


@router.get("/hardware", response=list[HardwareOut], summary="Search the hardware catalog")
@paginate(BoundedPages, page_size=50, max_page_size=MAX_PAGE)
def list_hardware(request: HttpRequest, filters: Query[HardwareFilters]):
    devices = Hardware.objects.search(filters.q)
    if filters.kind:
        devices = devices.of_kind(filters.kind)
    return devices


@router.get("/hardware/{slug}", response={200: HardwareOut, 404: Message}, summary="One device")
@cached_api
def get_hardware(request: HttpRequest, slug: str):
    return get_or_404(Hardware.objects, "hardware", slug)


@router.get("/fit", response={200: FitOut, 404: Message, 422: Message}, summary="Memory, verdict and speed")
@cached_api
def get_fit(request: HttpRequest, params: Query[FitQuery]):
    model = get_or_404(Model.objects.with_quantizations(), "model", params.model)
    quant = next((q for q in model.quantizations.all() if q.name.lower() == params.quant.lower()), None)
    if quant is None:
        names = ", ".join(q.name for q in model.quantizations.all())
        raise HttpError(404, f"{model.name} has no quantization {params.quant!r}; it has: {names}.")
    hardware = get_or_404(Hardware.objects, "hardware", params.hardware)
    options, clamped = options_for(model=model, options=params.options())
    count = params.gpu_count

    def fit_of(q: Quantization) -> fit.FitResult:
        return fit_for(model=model, quant=q, hardware=hardware, options=options, gpu_count=count)

    result = fit_of(quant)
    answer = fit.recommend([quant_choice(q, fit_of(q)) for q in model.quantizations.all()], hardware.kind)
    return {
        "model": model.slug,
        "quant": quant.name,
        "hardware": hardware.slug,
        "ctx": options.ctx,
        "ctx_asked": params.ctx,
        "ctx_clamped": clamped,
        "kv_type": params.kv_type,
        "users": params.users,
        "gpu_count": count,
        **_memory_dict(result.memory),
        "exact": exact_fields(result.memory),
        "needed_bytes": result.needed_bytes,
        "usable_bytes": result.usable_bytes,
        "headroom_bytes": result.headroom_bytes,
        "verdict": result.verdict.value,
        "gpu_layers": result.gpu_layers,
        "n_layers": result.n_layers,
        "cpu_moe_layers": result.cpu_moe_layers,
        "est_decode_tps": result.est_decode_tps,
        "est_prefill_tps": result.est_prefill_tps,
        "max_ctx": max_context_for(model=model, quant=quant, hardware=hardware, options=options, gpu_count=count),
        "llama_cpp_flags": llama_cpp_flags(ctx=options.ctx, kv_type=options.kv_type, result=result, users=params.users),
        "recommendation": {
            "rule": answer.rule,
            "min_decode_tps": answer.min_decode_tps,
            "recommended": answer.recommended.name if answer.recommended else None,
            "fastest": answer.fastest.name if answer.fastest else None,
            "best_quality": answer.best_quality.name if answer.best_quality else None,
        },
    }


class FitsQuery(FitKnobs):
    hardware: str = Field(..., max_length=120)
    # What the probe measured on the user's own machine, to estimate with instead of the catalog's peak figures.
    bandwidth_gbps: float | None = Field(None, gt=0, le=100_000, description="Measured memory bandwidth, GB/s.")
    clock_mhz: int | None = Field(None, ge=1, le=10_000, description="Measured GPU clock, MHz.")
    system_bandwidth_gbps: float | None = Field(
        None, gt=0, le=100_000, description="Measured host RAM bandwidth (partial offload), GB/s."
    )

    def options(self) -> fit.FitOptions:
        options = super().options()
        if self.system_bandwidth_gbps:
            options = dataclasses.replace(options, system_bandwidth_gbps=self.system_bandwidth_gbps)
        return options


@router.get("/fits", response={200: list[BestFitOut], 404: Message}, summary="Best quant per model on a device")
@cached_api
def list_fits(request: HttpRequest, params: Query[FitsQuery]):
    hardware = get_or_404(Hardware.objects, "hardware", params.hardware)
    # Measured figures replace the catalog's on this request's copy of the row only; nothing is saved.
    if params.bandwidth_gbps:
        hardware.bandwidth_gbps = params.bandwidth_gbps
    if params.clock_mhz:
        hardware.clock_mhz = params.clock_mhz
    if params.bandwidth_gbps or params.clock_mhz:
        # This request's own device: never the shared table, which is keyed by the catalog's row.
        found = best_fits(hardware=hardware, options=params.options(), gpu_count=params.gpu_count)
    else:
        # The table the hardware page builds (every model x quant at once, shared through the cache): the same
        # rows best_fits gives, in the same order, without fitting the catalog one model at a time.
        found = best_fits_of(fit_table(hardware=hardware, options=params.options(), gpu_count=params.gpu_count))
    return [best.as_dict() for best in found]


@router.post(
    "/fit/estimate",
    response={200: EstimateOut, 404: Message, 422: Message},
    summary="Fit for a model not in the catalog, from its config.json",
)
def estimate_fit(request: HttpRequest, body: EstimateIn):
    try:
        fields = model_fields_from_hf_config(body.config)
        if not fields.get("n_params"):
            fields["n_params"] = estimate_n_params(fields)
        shape_fields = {f.name for f in dataclasses.fields(fit.ModelShape)}
        values = {name: value for name, value in fields.items() if name in shape_fields and value is not None}
        values["swa_layers"] = frozenset(values.get("swa_layers") or ())
        shape = fit.ModelShape(**values)
    except (ConfigError, TypeError, ValueError, KeyError) as exc:
        raise HttpError(422, f"Unusable config.json: {exc}") from exc
    bits = body.bits_per_weight or fit.nominal_bits_per_weight(body.quant)
    if bits is None:
        raise HttpError(422, f"Unknown quantization {body.quant!r}; give bits_per_weight.")
    quant = fit.QuantSpec(name=body.quant, bits_per_weight=bits)
    options = body.options()
    try:
        memory = fit.memory_breakdown(shape, quant, options, device_kind="gpu")
    except ValueError as exc:
        raise HttpError(422, str(exc)) from exc
    answer: dict[str, Any] = {"n_params": shape.n_params, "quant": body.quant, **_memory_dict(memory)}
    if body.hardware:
        hardware = get_or_404(Hardware.objects, "hardware", body.hardware)
        result = fit.fit(shape, quant, device_spec_of(hardware, body.gpu_count), options)
        answer.update(
            hardware=hardware.slug,
            verdict=result.verdict.value,
            needed_bytes=result.needed_bytes,
            usable_bytes=result.usable_bytes,
            headroom_bytes=result.headroom_bytes,
            gpu_layers=result.gpu_layers,
            est_decode_tps=result.est_decode_tps,
            est_prefill_tps=result.est_prefill_tps,
        )
    return answer
