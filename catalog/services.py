"""Catalog rows in, fit-engine answers out: the bridge between the database and the pure engine in fit.py."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import pickle
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from types import SimpleNamespace

from django.core.cache import cache

from catalog import extensions, fit, fit_batch
from catalog import speed as speed_engine
from catalog.caching import data_version
from catalog.models import Hardware, HardwareKind, Model, ModelQuerySet, Quantization
from catalog.speed import DEFAULT_SPEED, SpeedModel
from catalog.speed_fit import BAND_PERCENTILE

# The engine is pure and its inputs are frozen dataclasses: the same question always has the same answer, and pages
# ask the same few thousand questions again and again.
cached_fit = lru_cache(maxsize=32768)(fit.fit)
cached_memory = lru_cache(maxsize=32768)(fit.memory_breakdown)
cached_max_context = lru_cache(maxsize=8192)(fit.max_context)


def options_for(*, model: Model, options: fit.FitOptions) -> tuple[fit.FitOptions, bool]:
    """The options a run of `model` uses: a context above the model's maximum is clamped to it (and flagged)."""
    ctx, clamped = fit.clamp_ctx(options.ctx, model.context_length)
    return (replace(options, ctx=ctx) if clamped else options), clamped


def speed_model() -> SpeedModel:
    """The speed model in force: the one an app registered with catalog.extensions (benchmarks fits it to accepted
    runs), else the engine's starting points. Cached per data version: fitting reads every accepted run."""
    provider = extensions.speed_model_provider()
    if provider is None:
        return DEFAULT_SPEED
    key = f"rigfit:speed-model:{_PICKLED_FORMAT}:{data_version()}"
    speed = cache.get(key)
    if speed is None:
        speed = provider()
        cache.set(key, speed, 600)
    return speed


def shape_of(model: Model) -> fit.ModelShape:
    return fit.ModelShape(
        n_params=model.n_params,
        n_layers=model.n_layers,
        hidden_size=model.hidden_size,
        n_heads=model.n_heads,
        n_kv_heads=model.n_kv_heads,
        head_dim=model.head_dim,
        vocab_size=model.vocab_size,
        intermediate_size=model.intermediate_size,
        tied_embeddings=model.tied_embeddings,
        sliding_window=model.sliding_window,
        swa_layers=frozenset(model.swa_layers or ()),
        kv_lora_rank=model.kv_lora_rank,
        qk_rope_head_dim=model.qk_rope_head_dim,
        n_active_params=model.n_active_params,
        n_experts=model.n_experts,
        n_experts_used=model.n_experts_used,
        vision_params=model.vision_params or 0,
        image_tokens=model.image_tokens or 0,
        attention_layers=None if model.attention_layers is None else frozenset(model.attention_layers),
        recurrent_layers=frozenset(model.recurrent_layers or ()),
        recurrent_state_values=model.recurrent_state_values or 0,
        kv_heads_per_layer=tuple(model.kv_heads_per_layer or ()),
        per_layer_embed_params=model.per_layer_embed_params or 0,
        moe_layers=None if model.moe_layers is None else frozenset(model.moe_layers),
    )


def quant_spec_of(quant: Quantization) -> fit.QuantSpec:
    return fit.QuantSpec(name=quant.name, bits_per_weight=quant.bits_per_weight, file_bytes=quant.exact_bytes)


def device_spec_of(hardware: Hardware, count: int = 1) -> fit.DeviceSpec:
    return fit.DeviceSpec(
        name=hardware.name,
        kind=hardware.kind,  # type: ignore[arg-type]  # HardwareKind values are fit.DeviceKind values
        memory_bytes=hardware.memory_bytes,
        bandwidth_gbps=hardware.bandwidth_gbps,
        fp16_tflops=hardware.fp16_tflops,
        count=count,
        vendor=hardware.vendor,
        generation=hardware.generation,
        matrix_tflops=hardware.matrix_tflops,
        int8_tops=hardware.int8_tops,
        clock_mhz=hardware.clock_mhz,
        fp32_tflops=hardware.fp32_tflops,
    )


def fit_for(
    *,
    model: Model,
    quant: Quantization,
    hardware: Hardware,
    options: fit.FitOptions,
    gpu_count: int = 1,
    speed: SpeedModel | None = None,
) -> fit.FitResult:
    """The fit at exactly `options` (callers clamp the context with options_for first)."""
    device = device_spec_of(hardware, gpu_count)
    return cached_fit(shape_of(model), quant_spec_of(quant), device, options, speed or speed_model())


def max_context_for(
    *, model: Model, quant: Quantization, hardware: Hardware, options: fit.FitOptions, gpu_count: int = 1
) -> int | None:
    """The largest context, up to the model's maximum, at which this quant fits entirely on the device."""
    device = device_spec_of(hardware, gpu_count)
    return cached_max_context(shape_of(model), quant_spec_of(quant), device, options, model.context_length)


def effective_bits(quant: Quantization) -> float | None:
    """The quant's own bits per weight, else the nominal bits of its llama.cpp type."""
    return quant.bits_per_weight if quant.bits_per_weight is not None else fit.nominal_bits_per_weight(quant.name)


def quant_choice(quant: Quantization, result: fit.FitResult) -> fit.QuantChoice:
    return fit.QuantChoice(
        name=quant.name,
        bits_per_weight=effective_bits(quant),
        perplexity_delta=quant.perplexity_delta,
        result=result,
    )


@dataclass(frozen=True, slots=True)
class QuantRow:
    """One line of a model's quantization table."""

    quant: Quantization
    bits_per_weight: float | None
    bits_estimated: bool
    gpu: fit.MemoryBreakdown
    cpu: fit.MemoryBreakdown
    result: fit.FitResult | None
    max_ctx: int | None = None  # largest context that fits entirely on the chosen device (None: none, or no device)

    @property
    def size_bytes(self) -> int:
        return self.gpu.weights_bytes

    @property
    def size_estimated(self) -> bool:
        return "weights_bytes" in self.gpu.estimated


def quant_rows(
    *, model: Model, hardware: Hardware | None, options: fit.FitOptions, gpu_count: int = 1
) -> list[QuantRow]:
    """Every quantization of a model with its memory on a GPU and on a CPU, and its verdict on `hardware`."""
    shape = shape_of(model)
    speed = speed_model()
    device = device_spec_of(hardware, gpu_count) if hardware else None
    rows = []
    for quant in model.quantizations.all():
        spec = quant_spec_of(quant)
        rows.append(
            QuantRow(
                quant=quant,
                bits_per_weight=effective_bits(quant),
                bits_estimated=quant.bits_per_weight is None,
                gpu=cached_memory(shape, spec, options, "gpu"),
                cpu=cached_memory(shape, spec, options, "cpu"),
                result=cached_fit(shape, spec, device, options, speed) if device else None,
                max_ctx=cached_max_context(shape, spec, device, options, model.context_length) if device else None,
            )
        )
    rows.sort(key=lambda row: (-row.gpu.weights_bytes, row.quant.name))
    return rows


@dataclass(frozen=True, slots=True)
class RowRecommendation:
    """fit.recommend's answer over a model's quant table, with the rows it names."""

    rule: str
    recommended: QuantRow | None
    fastest: QuantRow | None
    best_quality: QuantRow | None


def recommend_rows(*, rows: Sequence[QuantRow], device_kind: str) -> RowRecommendation | None:
    """Which quant to pick among the rows of quant_rows (None without a device)."""
    with_result = [row for row in rows if row.result is not None]
    if not with_result:
        return None
    by_name = {row.quant.name: row for row in with_result}
    choices = [quant_choice(row.quant, row.result) for row in with_result if row.result is not None]
    answer = fit.recommend(choices, device_kind)

    def row_of(choice: fit.QuantChoice | None) -> QuantRow | None:
        return by_name[choice.name] if choice is not None else None

    return RowRecommendation(
        rule=answer.rule,
        recommended=row_of(answer.recommended),
        fastest=row_of(answer.fastest),
        best_quality=row_of(answer.best_quality),
    )


VERDICT_RANK = {
    fit.Verdict.FITS_GPU: 0,
    fit.Verdict.PARTIAL_OFFLOAD: 1,
    fit.Verdict.CPU_ONLY: 2,
    fit.Verdict.DOES_NOT_FIT: 3,
}


@dataclass(frozen=True, slots=True)
class BestFit:
    """The quant a list shows for a model on a device: the recommended one (fit.recommend), else the fastest that
    runs. `ctx` is the context used (the asked one, clamped to the model's maximum when `ctx_clamped`)."""

    model: Model
    quant: Quantization
    result: fit.FitResult
    ctx: int = 0
    ctx_clamped: bool = False
    recommended: bool = True

    def as_dict(self) -> dict[str, object]:
        """The row /api/fits answers and the probe prints."""
        return {
            "model": self.model.slug,
            "name": self.model.name,
            "quant": self.quant.name,
            "recommended": self.recommended,
            "ctx": self.ctx,
            "ctx_clamped": self.ctx_clamped,
            "verdict": self.result.verdict.value,
            "total_bytes": self.result.memory.total_bytes,
            "needed_bytes": self.result.needed_bytes,
            "usable_bytes": self.result.usable_bytes,
            "headroom_bytes": self.result.headroom_bytes,
            "gpu_layers": self.result.gpu_layers,
            "est_decode_tps": self.result.est_decode_tps,
        }


@dataclass(frozen=True, slots=True)
class QuantFacts:
    """What a pick needs of one quantization row, without the row."""

    quant_id: int
    name: str
    spec: fit.QuantSpec
    bits_per_weight: float | None
    perplexity_delta: float | None


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What a pick needs of one model: its shape and its quants (one per name, as best_quant has always keyed them)."""

    model_id: int
    name: str
    n_params: int
    context_length: int
    shape: fit.ModelShape
    quants: tuple[QuantFacts, ...]


def model_facts(model: Model) -> ModelFacts:
    by_name = {quant.name: quant for quant in model.quantizations.all()}
    return ModelFacts(
        model_id=model.pk,
        name=model.name,
        n_params=model.n_params,
        context_length=model.context_length,
        shape=shape_of(model),
        quants=tuple(
            QuantFacts(quant.pk, quant.name, quant_spec_of(quant), effective_bits(quant), quant.perplexity_delta)
            for quant in by_name.values()
        ),
    )


@dataclass(frozen=True, slots=True)
class Pick:
    quant: QuantFacts
    result: fit.FitResult
    ctx: int
    ctx_clamped: bool
    recommended: bool


def pick_quant(
    facts: ModelFacts, *, device: fit.DeviceSpec, options: fit.FitOptions, allow_offload: bool, speed: SpeedModel
) -> Pick | None:
    """best_quant's rule on a model's facts: the one place it is written."""
    ctx, clamped = fit.clamp_ctx(options.ctx, facts.context_length)
    options = replace(options, ctx=ctx) if clamped else options
    by_name = {quant.name: quant for quant in facts.quants}
    choices = [
        fit.QuantChoice(
            name=quant.name,
            bits_per_weight=quant.bits_per_weight,
            perplexity_delta=quant.perplexity_delta,
            result=cached_fit(facts.shape, quant.spec, device, options, speed),
        )
        for quant in facts.quants
    ]
    if not allow_offload:
        choices = [c for c in choices if fit.fits_entirely(c.result.verdict, device.kind)]
    answer = fit.recommend(choices, device.kind)
    pick = answer.pick
    if pick is None:
        return None
    return Pick(by_name[pick.name], pick.result, options.ctx, clamped, answer.recommended is not None)


def best_quant(
    *,
    model: Model,
    device: fit.DeviceSpec,
    options: fit.FitOptions,
    allow_offload: bool = True,
    speed: SpeedModel | None = None,
) -> BestFit | None:
    """Which quant of `model` to pick on the device (fit.recommend's rule, else the fastest that runs), at the asked
    context clamped to the model's maximum. Without `allow_offload`, only quants that fit entirely count. None when
    nothing runs. Callers asking for many models or devices pass `speed` (speed_model()) once."""
    picked = pick_quant(
        model_facts(model), device=device, options=options, allow_offload=allow_offload, speed=speed or speed_model()
    )
    if picked is None:
        return None
    quant = next(quant for quant in model.quantizations.all() if quant.pk == picked.quant.quant_id)
    return BestFit(
        model=model,
        quant=quant,
        result=picked.result,
        ctx=picked.ctx,
        ctx_clamped=picked.ctx_clamped,
        recommended=picked.recommended,
    )


def best_fits(
    *,
    hardware: Hardware,
    options: fit.FitOptions,
    models: Iterable[Model] | None = None,
    gpu_count: int = 1,
    allow_offload: bool = True,
) -> list[BestFit]:
    """Best quant per model that runs on `hardware`, ranked: full-GPU fits first, then larger models first."""
    if models is None:
        models = Model.objects.with_quantizations()
    device = device_spec_of(hardware, gpu_count)
    speed = speed_model()
    found = [
        best
        for model in models
        if (best := best_quant(model=model, device=device, options=options, allow_offload=allow_offload, speed=speed))
    ]
    return sorted(found, key=lambda b: (VERDICT_RANK[b.result.verdict], -b.model.n_params, b.model.name))


FIT_TABLE_TTL_S = 600


@dataclass(frozen=True, slots=True)
class FitEntry:
    """One row of a fit table: what best_quant picks for one model on one device, without the ORM rows (a table of
    the whole catalog pickles small and loads fast). best_fits_of turns a page of them back into BestFit."""

    model_id: int
    quant_id: int
    n_params: int
    name: str
    result: fit.FitResult
    ctx: int
    ctx_clamped: bool
    recommended: bool


# A fit table's row: (model id, verdict value, the pickled FitEntry). Filtering and counting read the first two; only
# the rows a page shows are unpickled (a table of 1,000 dataclass rows took ~25 ms to unpickle, its bytes ~1 ms). The
# bytes hold the entry's fields as plain tuples (_entry_state): pickling 1,000 nested dataclasses took ~10 ms.
FitRow = tuple[int, str, bytes]
_MEMORY_FIELDS = tuple(f.name for f in dataclasses.fields(fit.MemoryBreakdown))
_RESULT_FIELDS = tuple(f.name for f in dataclasses.fields(fit.FitResult) if f.name != "memory")
_ENTRY_LAYOUT = "entry-state-1"  # the layout of _entry_state, part of the cache key (_pickled_format)


def _entry_state(facts: ModelFacts, picked: Pick) -> tuple:
    """A FitEntry as plain values: its own fields, the FitResult's (the verdict by value) and the breakdown's, each
    in field order."""
    result = picked.result
    return (
        facts.model_id,
        picked.quant.quant_id,
        facts.n_params,
        facts.name,
        picked.ctx,
        picked.ctx_clamped,
        picked.recommended,
        tuple(getattr(result.memory, name) for name in _MEMORY_FIELDS),
        tuple(getattr(result, name) for name in _RESULT_FIELDS),
    )


def _entry_of(state: tuple) -> FitEntry:
    model_id, quant_id, n_params, name, ctx, ctx_clamped, recommended, memory, result = state
    fields = dict(zip(_RESULT_FIELDS, result, strict=True))
    fields["verdict"] = fit.Verdict(fields["verdict"])
    return FitEntry(
        model_id=model_id,
        quant_id=quant_id,
        n_params=n_params,
        name=name,
        result=fit.FitResult(memory=fit.MemoryBreakdown(**dict(zip(_MEMORY_FIELDS, memory, strict=True))), **fields),
        ctx=ctx,
        ctx_clamped=ctx_clamped,
        recommended=recommended,
    )


# What a list row never shows: the long texts and the per-layer lists (a model page reads the whole row).
LIST_DEFERRED = (
    "description",
    "strengths",
    "limitations",
    "sources",
    "swa_layers",
    "attention_layers",
    "recurrent_layers",
    "kv_heads_per_layer",
)
# The long texts no fit reads, left out of catalog_facts' queries.
FACTS_DEFERRED = ("description", "strengths", "limitations", "sources")
QUANT_DEFERRED = ("quality_source", "source", "file_name")
# This process's copy of the catalog's facts, with the token of the data version it was read at (see catalog_facts).
_facts_memo: dict[str, tuple[int, str, list[ModelFacts]]] = {}


def catalog_facts() -> list[ModelFacts]:
    """Every listed model's facts, in the catalog's order: read from the database once per data version and kept in
    this process (reading 1,000 models and their quants as rows costs about as much as fitting them all once). A token
    in the shared cache guards the copy: emptying the cache, or a new data version, makes a new one."""
    version = data_version()
    token_key = f"catalog:facts-token:{version}"
    token = cache.get(token_key)
    memo = _facts_memo.get("catalog")
    if memo is not None and token is not None and memo[:2] == (version, token):
        return memo[2]
    facts = _listed_facts()
    if token is None:
        cache.add(token_key, uuid.uuid4().hex, FIT_TABLE_TTL_S)
        token = cache.get(token_key)
    if token is not None:
        _facts_memo["catalog"] = (version, token, facts)
    return facts


class _QuantValues(SimpleNamespace):
    """A quantization row read with values(): what quant_spec_of and effective_bits read of a Quantization."""

    exact_bytes = Quantization.exact_bytes


def _listed_facts() -> list[ModelFacts]:
    """model_facts of every listed model, in the catalog's order, from two values() queries: building 1,000 Model and
    8,000 Quantization instances (with_quantizations) took ~0.3 s; the facts are the same (shape_of and
    quant_spec_of read the same fields off plain rows)."""
    model_fields = [f.attname for f in Model._meta.concrete_fields if f.name not in FACTS_DEFERRED]
    quant_fields = [f.attname for f in Quantization._meta.concrete_fields if f.name not in QUANT_DEFERRED]
    by_model: dict[int, dict[str, QuantFacts]] = {}
    rows = (
        Quantization.objects.filter(model__in=Model.objects.values("pk"))
        .order_by("model_id", *Quantization._meta.ordering)
        .values(*quant_fields)
    )
    for row in rows:
        quant = _QuantValues(pk=row["id"], **row)
        # One per name, the last row of a name winning at the first one's place (as model_facts' dict does).
        by_model.setdefault(row["model_id"], {})[quant.name] = QuantFacts(
            quant.pk, quant.name, quant_spec_of(quant), effective_bits(quant), quant.perplexity_delta
        )
    facts = []
    for row in Model.objects.values(*model_fields):
        model = SimpleNamespace(pk=row["id"], **row)
        facts.append(
            ModelFacts(
                model_id=model.pk,
                name=model.name,
                n_params=model.n_params,
                context_length=model.context_length,
                shape=shape_of(model),  # type: ignore[arg-type]  # reads the same fields off the row
                quants=tuple(by_model.get(model.pk, {}).values()),
            )
        )
    return facts


def _pickled_format() -> str:
    """A digest of the dataclass shapes a fit table pickles: rows pickled by an older deploy outlive it in a shared
    cache (Redis), and unpickling them into changed classes would fail or miss fields, so the key names the format."""
    classes = [cls for module in (fit, speed_engine) for _, cls in inspect.getmembers(module, inspect.isclass)]
    shapes = sorted(
        (cls.__qualname__, [f.name for f in dataclasses.fields(cls)])
        for cls in [*classes, FitEntry]
        if dataclasses.is_dataclass(cls)
    )
    return hashlib.sha256(repr((_ENTRY_LAYOUT, shapes)).encode()).hexdigest()[:12]


_PICKLED_FORMAT = _pickled_format()


def _batch_of(facts: list[ModelFacts]) -> fit_batch.Catalog:
    """The catalog's facts as fit_batch's arrays, kept beside this process's copy of the facts (catalog_facts)."""
    memo = _batch_memo.get("catalog")
    if memo is not None and memo[0] is facts:
        return memo[1]
    batch = fit_batch.prepare(
        [
            fit_batch.ModelInput(
                shape=model.shape,
                context_length=model.context_length,
                quants=tuple(
                    fit_batch.QuantInput(quant.spec, quant.bits_per_weight, quant.perplexity_delta)
                    for quant in model.quants
                ),
            )
            for model in facts
        ]
    )
    _batch_memo["catalog"] = (facts, batch)
    return batch


_batch_memo: dict[str, tuple[list[ModelFacts], fit_batch.Catalog]] = {}


def catalog_picks(
    *, device: fit.DeviceSpec, options: fit.FitOptions, allow_offload: bool, speed: SpeedModel
) -> list[tuple[ModelFacts, Pick]]:
    """pick_quant for every listed model, in the catalog's order: every model x quant fitted at once with numpy
    (fit_batch, the same figures), or one by one where fit_batch cannot take the input or no longer matches the
    engine (fit_batch.in_step)."""
    facts = catalog_facts()
    fits = None
    if fit_batch.in_step():
        batch = _batch_of(facts)
        fits = fit_batch.fit_all(batch, device, options, speed)
    if fits is None:
        return [
            (model, picked)
            for model in facts
            if (picked := pick_quant(model, device=device, options=options, allow_offload=allow_offload, speed=speed))
        ]
    rows, recommended = fits.picks(allow_offload=allow_offload)
    chosen = [(m, row) for m, row in enumerate(rows.tolist()) if row >= 0]
    results = fits.results([row for _m, row in chosen])
    quants, ctx, clamped, recommended_list = (
        batch.row_quant.tolist(),
        fits.ctx.tolist(),
        fits.clamped.tolist(),
        recommended.tolist(),
    )
    by_model = {
        m: Pick(facts[m].quants[quants[row]], result, ctx[m], clamped[m], recommended_list[m])
        for (m, row), result in zip(chosen, results, strict=True)
    }
    for m in batch.fallback:  # an input fit_batch leaves to the engine (which may reject it, as it always has)
        picked = pick_quant(facts[m], device=device, options=options, allow_offload=allow_offload, speed=speed)
        if picked is not None:
            by_model[m] = picked
    return [(facts[m], by_model[m]) for m in sorted(by_model)]


def fit_table(
    *, hardware: Hardware, options: fit.FitOptions, gpu_count: int = 1, allow_offload: bool = True
) -> list[FitRow]:
    """best_fits over the whole listed catalog, ranked the same way, as compact rows: built once per data version,
    device and options, then shared by every page that lists fits on that device (any filter, sort, page, htmx or
    not). A catalog or benchmark change bumps the data version (catalog.caching), so a stale table is never read."""
    settings = (hardware.pk, gpu_count, allow_offload, options)
    digest = hashlib.sha256(repr(settings).encode()).hexdigest()[:32]
    key = f"catalog:fit-table:{_PICKLED_FORMAT}:{data_version()}:{digest}"
    table = cache.get(key)
    if table is None:
        found = catalog_picks(
            device=device_spec_of(hardware, gpu_count),
            options=options,
            allow_offload=allow_offload,
            speed=speed_model(),
        )
        # best_fits' ranking (a stable sort of the catalog's order).
        found.sort(key=lambda pair: (VERDICT_RANK[pair[1].result.verdict], -pair[0].n_params, pair[0].name))
        table = [
            (
                facts.model_id,
                picked.result.verdict.value,
                pickle.dumps(_entry_state(facts, picked), pickle.HIGHEST_PROTOCOL),
            )
            for facts, picked in found
        ]
        cache.set(key, table, FIT_TABLE_TTL_S)
    return table


def fit_rows_of(models: ModelQuerySet, *, hardware: Hardware, options: fit.FitOptions) -> list[FitRow]:
    """The rows of `hardware`'s fit table (fit_table: the whole catalog, ranked) that belong to `models`, a filtered
    Model queryset, in the table's order: what a "fits on" list shows, before its own sort and paging."""
    wanted = set(models.values_list("pk", flat=True))
    return [row for row in fit_table(hardware=hardware, options=options) if row[0] in wanted]


def fit_entries(rows: Iterable[FitRow]) -> list[FitEntry]:
    # Our own rows from our own cache, which pickles every value anyway.
    return [_entry_of(pickle.loads(blob)) for _model_id, _verdict, blob in rows]


def best_fits_of(rows: Sequence[FitRow]) -> list[BestFit]:
    """The BestFit rows of a page of a fit table, in its order: two queries whatever the catalog's size. A model
    deleted since the table was built drops out."""
    entries = fit_entries(rows)
    models = Model.objects.defer(*LIST_DEFERRED).in_bulk([entry.model_id for entry in entries])
    quants = Quantization.objects.defer("quality_source", "source", "file_name").in_bulk(
        [entry.quant_id for entry in entries]
    )
    return [
        BestFit(
            model=models[entry.model_id],
            quant=quants[entry.quant_id],
            result=entry.result,
            ctx=entry.ctx,
            ctx_clamped=entry.ctx_clamped,
            recommended=entry.recommended,
        )
        for entry in entries
        if entry.model_id in models and entry.quant_id in quants
    ]


def hardware_that_runs(
    *, model: Model, candidates: Sequence[Hardware], options: fit.FitOptions, limit: int = 8
) -> list[tuple[Hardware, BestFit]]:
    """Devices, from `candidates`, that hold the model entirely in GPU (or unified) memory at `options` (the page's
    chosen context, KV type and users), smallest first.

    Devices are tried smallest memory first, and the search stops once `limit` have been found and the next device
    has more memory than the last of them: no larger device can enter the list (ties in memory are all tried)."""
    speed = speed_model()
    found: list[tuple[Hardware, BestFit]] = []
    for hardware in sorted((h for h in candidates if h.kind != HardwareKind.CPU), key=lambda h: h.memory_bytes):
        if len(found) >= limit and hardware.memory_bytes > found[limit - 1][0].memory_bytes:
            break
        device = device_spec_of(hardware)
        best = best_quant(model=model, device=device, options=options, allow_offload=False, speed=speed)
        if best is not None:
            found.append((hardware, best))
            found.sort(key=lambda pair: (pair[0].memory_bytes, -pair[1].result.memory.weights_bytes))
    return found[:limit]


BACKEND_LABELS = {"cuda": "CUDA", "rocm": "ROCm", "metal": "Metal", "vulkan": "Vulkan", "sycl": "SYCL", "cpu": "CPU"}


@dataclass(frozen=True, slots=True)
class SpeedEvidence:
    """What backs the speed figures shown for one model on one device: the held-out band of the device's backend
    (speed model fitted on accepted runs) and, per quant, the median of accepted runs of exactly this model, quant
    and device where there are any."""

    backend: str
    band_pct: float | None  # band_percentile-th percentile of held-out |error|, None before any run backs it
    runs: int
    measured: dict[str, extensions.MeasuredSpeed]
    accuracy_url: str | None
    prefill_band_pct: float | None = None
    band_percentile: int = BAND_PERCENTILE

    @property
    def backend_label(self) -> str:
        return BACKEND_LABELS.get(self.backend, self.backend)


def speed_evidence(*, model: Model | None, hardware: Hardware, gpu_count: int = 1) -> SpeedEvidence:
    """The band of `hardware`'s backend and, for one model on one GPU, the measured medians per quant."""
    from catalog.speed import backend_of

    backend = backend_of(device_spec_of(hardware))
    params = speed_model().params_for(backend)
    measured: dict[str, extensions.MeasuredSpeed] = {}
    if model is not None and gpu_count == 1:
        for (model_id, quant_name, hardware_id), found in extensions.measured_speeds().items():
            if model_id == model.pk and hardware_id == hardware.pk:
                measured[quant_name] = found
    return SpeedEvidence(
        backend,
        params.decode_error_pct,
        params.decode_runs,
        measured,
        extensions.link("speed-accuracy"),
        prefill_band_pct=params.prefill_error_pct,
    )
