"""Catalog pages: thin views over services.py and the pure fit engine. Each page's live region is one
include-able fragment, rendered alone for htmx requests and inside the full page otherwise."""

from __future__ import annotations

import math
from datetime import timedelta

from django.core.cache import cache
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from catalog import extensions, fit, speed, vision
from catalog.caching import cached_page, data_version
from catalog.faq import model_faq
from catalog.forms import (
    CONTEXT_TICKS,
    CompareForm,
    FitForm,
    HardwareFilterForm,
    ModelFilterForm,
    hardware_picker_queryset,
)
from catalog.howto import recipes
from catalog.models import (
    NEW_MODEL_DAYS,
    PARAM_BANDS,
    Hardware,
    HardwareKind,
    Modality,
    Model,
    ParamBand,
    Quantization,
)
from catalog.services import (
    LIST_DEFERRED,
    BestFit,
    QuantRow,
    best_fits_of,
    best_quant,
    cached_fit,
    device_spec_of,
    fit_rows_of,
    fit_table,
    hardware_that_runs,
    options_for,
    quant_rows,
    quant_spec_of,
    recommend_rows,
    shape_of,
    speed_evidence,
    speed_model,
)

PAGE_SIZE = 24
# Rows per page of a hardware page's ranked list (fits entirely first, then with offload).
FITS_PAGE_SIZE = 50
# "At the start of a conversation": llama-bench's tg128 reads, on average, the KV of 64 tokens.
START_DEPTH = 64


def _render(request: HttpRequest, page: str, fragment: str, context: dict) -> HttpResponse:
    """The full page, or for an htmx request only the fragment it swaps (the same template file)."""
    return render(request, fragment if request.htmx else page, context)


def _picker_hardware() -> list[Hardware]:
    """The hardware <select>'s devices, per data version. Templates get the function itself (rendered only where
    the picker's own cached fragment misses, the template engine calls it)."""
    key = f"catalog:picker:{data_version()}"
    devices = cache.get(key)
    if devices is None:
        devices = list(hardware_picker_queryset())
        cache.set(key, devices, 300)
    return devices


@require_GET
@cached_page
def home(request: HttpRequest) -> HttpResponse:
    featured = list(Model.objects.featured().with_quantizations()[:8])
    # With ?hardware= (a link from a hardware page, or the picker), each card names the quant to pick on it.
    form = FitForm(request.GET or None)
    hardware = form.selected_hardware
    picks = {}
    if hardware is not None:
        device = device_spec_of(hardware, form.value("gpu_count"))
        picks = {m.pk: best_quant(model=m, device=device, options=form.options()) for m in featured}
    context = {
        "featured": featured,
        "hardware": hardware,
        "picks": picks,
        "options": form.options(),
        "min_decode_tps": fit.MIN_DECODE_TPS,
        "model_count": Model.objects.count(),
        "hardware_count": Hardware.objects.count(),
        "picker": _picker_hardware,
    }
    return render(request, "catalog/home.html", context)


@require_GET
@cached_page
def model_list(request: HttpRequest) -> HttpResponse:
    form = ModelFilterForm(request.GET or None)
    models = Model.objects.all()
    today = timezone.now().date()
    fits_on: Hardware | None = None
    ctx = 4096
    sort = ""
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        models = models.search(data["q"])
        if data["modality"]:
            models = models.filter(modality=data["modality"])
        if data["band"]:
            models = models.in_param_band(data["band"])
        for feature in data["feature"]:
            models = models.with_feature(feature)
        if data["released"]:
            models = models.released_since(today - timedelta(days=ModelFilterForm.RELEASED_DAYS[data["released"]]))
        if data["license"]:
            models = models.filter(license__iexact=data["license"])
        sort = data["sort"]
        fits_on = data["fits"]
        ctx = data["ctx"] or ctx
    models = models.order_by(*ModelFilterForm.ORDERING[sort or "params"])
    best_by_model: dict[int, BestFit] = {}
    if fits_on is not None:
        # The device's fit table (whole catalog, cached per data version and context) narrowed to the filtered models:
        # ranked by fit unless a sort was asked for. Only the page shown becomes model rows.
        rows = fit_rows_of(models, hardware=fits_on, options=fit.FitOptions(ctx=ctx))
        if sort:
            order = {pk: i for i, pk in enumerate(models.values_list("pk", flat=True))}
            rows.sort(key=lambda row: order[row[0]])
        page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
        found = best_fits_of(page.object_list)
        best_by_model = {best.model.pk: best for best in found}
        page.object_list = [best.model for best in found]
    else:
        page = Paginator(models.defer(*LIST_DEFERRED), PAGE_SIZE).get_page(request.GET.get("page"))
        page.object_list = list(page.object_list)
        counts = dict(
            Quantization.objects.filter(model__in=page.object_list)
            .values("model")
            .annotate(n=Count("pk"))
            .values_list("model", "n")
        )
        for model in page.object_list:
            model.n_quants = counts.get(model.pk, 0)
    context = {
        "form": form,
        "page": page,
        "fits_on": fits_on,
        # What the list assumes beside a discrete GPU for the part that spills off it (the list has no RAM control).
        "system_ram_gib": fit.FitOptions().system_ram_bytes // 1024**3,
        "evidence": speed_evidence(model=None, hardware=fits_on) if fits_on else None,
        "best_by_model": best_by_model,
        "ctx": ctx,
        "licenses": _licenses(),
        "picker": _picker_hardware(),  # its own "fits on" <select>, not the cached picker fragment: used twice
        "min_decode_tps": fit.MIN_DECODE_TPS,
        "new_since": today - timedelta(days=NEW_MODEL_DAYS),
        "new_days": NEW_MODEL_DAYS,
    }
    return _render(request, "catalog/model_list.html", "catalog/_model_results.html", context)


def _licenses() -> list[str]:
    """The licence <select>'s options, per data version."""
    key = f"catalog:licenses:{data_version()}"
    found = cache.get(key)
    if found is None:
        found = list(Model.objects.order_by("license").values_list("license", flat=True).distinct())
        cache.set(key, found, 600)
    return found


def _comparable(model: Model) -> list[Model]:
    """Models worth comparing: up to three of the same size band, and the nearest one tier down and one tier up."""
    key = f"catalog:comparable:{model.pk}:{data_version()}"
    picks = cache.get(key)
    if picks is None:
        picks = _pick_comparable(model)
        cache.set(key, picks, 600)
    return picks


def _pick_comparable(model: Model) -> list[Model]:
    """A few bounded queries, whatever the catalog's size: only the neighbours in size are read."""
    others = Model.objects.exclude(pk=model.pk)
    if model.is_vision:
        # Like with like: a vision-language model is compared with the other VLMs, the nearest in size first. The
        # five nearest in log-size are among the five next smaller and the five next larger.
        vlms = others.filter(modality=model.modality)
        smaller = list(vlms.filter(n_params__lte=model.n_params).order_by("-n_params", "pk")[:5])
        larger = list(vlms.filter(n_params__gt=model.n_params).order_by("n_params", "pk")[:5])
        near = sorted(smaller + larger, key=lambda m: m.n_params)
        return sorted(near, key=lambda m: (abs(math.log(m.n_params / model.n_params)), m.n_params))[:5]
    bands = list(PARAM_BANDS)
    here = bands.index(ParamBand(model.param_band))
    # Text models are compared with text models: three of the same band (featured first, then smallest), the largest
    # of the band below and the smallest of the band above.
    text = others.exclude(modality=Modality.VISION)
    picks = list(text.in_param_band(bands[here]).order_by("-featured", "n_params", "pk")[:3])
    if here > 0:
        picks += list(text.in_param_band(bands[here - 1]).order_by("-n_params", "-pk")[:1])
    if here < len(bands) - 1:
        picks += list(text.in_param_band(bands[here + 1]).order_by("n_params", "pk")[:1])
    return picks


def _runs_on(model: Model, options: fit.FitOptions) -> list:
    """'Hardware that runs this' at the page's chosen context, KV type and users; cached per model version and
    settings."""
    key = f"catalog:runs-on:{model.pk}:{data_version()}:{options.ctx}:{options.kv_type}:{options.users}"
    cached = cache.get(key)
    if cached is None:
        cached = hardware_that_runs(model=model, candidates=_picker_hardware(), options=options)
        cache.set(key, cached, 600)
    return cached


def _fit_panel_context(model: Model, form: FitForm) -> dict:
    asked = form.options()
    options, ctx_clamped = options_for(model=model, options=asked)
    hardware = form.selected_hardware
    gpu_count = form.value("gpu_count")
    rows = quant_rows(model=model, hardware=hardware, options=options, gpu_count=gpu_count)
    shape = shape_of(model)
    recommendation = recommend_rows(rows=rows, device_kind=hardware.kind) if hardware else None
    # With a device chosen and no quant asked for, the verdict speaks of the quant the page recommends.
    picked = (recommendation.recommended or recommendation.fastest) if recommendation else None
    chosen = next((r for r in rows if r.quant.name == request_quant(form)), None) or picked or default_row(rows)
    plan = decode_start = gpu_weights = None
    if chosen is not None and hardware is not None:
        result = chosen.result
        if hardware.kind == "gpu":
            # The verdict's "needs" counts only the weights llama.cpp places on a discrete GPU; the legend lists all
            # of them, so the page states the GPU's share: needs less everything else it counts.
            mem = result.memory
            gpu_weights = result.needed_bytes - mem.kv_cache_bytes - mem.compute_bytes - mem.vision_bytes
        device = device_spec_of(hardware, gpu_count)
        plan = fit.serving_plan(shape, quant_spec_of(chosen.quant), device, options, speed_model())
        # The verdict's speed is with the context full; a conversation starts far faster.
        decode_start = speed.decode_tps_at(
            shape, quant_spec_of(chosen.quant), device, options, chosen.result, speed_model(), depth=START_DEPTH
        )
    return {
        "model": model,
        "form": form,
        "rows": rows,
        "chosen": chosen,
        "plan": plan,
        "hardware": hardware,
        "gpu_count": gpu_count,
        "options": options,
        "asked_ctx": asked.ctx,
        "ctx_clamped": ctx_clamped,
        "recommendation": recommendation,
        "min_decode_tps": fit.MIN_DECODE_TPS,
        "kv_bytes": fit.kv_cache_bytes(shape, options.ctx, options.kv_type, options.users),
        **_kv_layers(shape, options.users),
        "text_after_image": fit.text_tokens_after_image(shape, options.ctx),
        "ctx_ticks": [t for t in CONTEXT_TICKS if t <= max(model.context_length, 512)],
        "speed": speed_model(),
        "decode_start_tps": decode_start,
        "gpu_weights_bytes": gpu_weights,
        "start_depth": START_DEPTH,
        "evidence": speed_evidence(model=model, hardware=hardware, gpu_count=gpu_count) if hardware else None,
    }


def _kv_layers(shape: fit.ModelShape, users: int) -> dict:
    """Which layers the KV figure speaks of: those that keep a KV cache (a hybrid's recurrent layers and Gemma 3n's
    KV-sharing layers keep none), the sliding-window ones among them, and the recurrent state the others hold,
    which the memory breakdown counts with the KV cache."""
    kv_layers = [il for il in range(shape.n_layers) if fit.layer_kv_heads(shape, il)]
    swa = set(shape.swa_layers) if shape.sliding_window else set()
    return {
        "kv_layers": len(kv_layers),
        "kv_swa_layers": sum(1 for il in kv_layers if il in swa),
        "recurrent_layers": sum(1 for il in shape.recurrent_layers if 0 <= il < shape.n_layers),
        "state_bytes": fit.recurrent_state_bytes(shape, users),
    }


def _model_live_context(model: Model, context: dict) -> dict:
    """The parts of the model page that follow the settings besides the fit panel: the recipes (from the verdict),
    'hardware that runs this', the questions and the recommendation chip."""
    chosen = context["chosen"]
    options = context["options"]
    return {
        "recipes": recipes(
            model,
            quant_name=chosen.quant.name if chosen else "Q4_K_M",
            ctx=options.ctx,
            kv_type=options.kv_type,
            users=options.users,
            result=chosen.result if chosen else None,
            hardware=context["hardware"],
            gpu_count=context["gpu_count"],
            vllm_result=_vllm_result(context["rows"]),
            weights_bytes=chosen.size_bytes if chosen else None,
        ),
        "faq": model_faq(model, context["rows"], options, context["recommendation"], context["hardware"]),
        "runs_on": _runs_on(model, options),
        "image_times": _image_times(model, context) if model.is_vision else [],
        "caption_tokens": vision.CAPTION_TOKENS,
    }


# Devices a VLM page always times an image on (the small board, a base Mac, a mid GPU, a big GPU), where the catalog
# lists them; the page's chosen device comes first.
IMAGE_TIME_DEVICES = ("raspberry-pi-5-8gb", "apple-m2-8gb", "nvidia-geforce-rtx-3080", "nvidia-geforce-rtx-4090")


def _image_times(model: Model, context: dict) -> list[dict]:
    """Estimated seconds per image at the page's quant and settings on the chosen device and IMAGE_TIME_DEVICES,
    with the time from measured text speeds where accepted runs of this model and quant exist on the device."""
    chosen = context["chosen"]
    if chosen is None:
        return []
    options = context["options"]
    devices = list(Hardware.objects.filter(slug__in=IMAGE_TIME_DEVICES))
    devices.sort(key=lambda h: IMAGE_TIME_DEVICES.index(h.slug))
    selected = context["hardware"]
    if selected is not None:
        devices = [selected, *(h for h in devices if h.pk != selected.pk)]
    shape, quant = shape_of(model), quant_spec_of(chosen.quant)
    measured = extensions.measured_speeds()
    rows = []
    for hardware in devices:
        gpu_count = context["gpu_count"] if hardware == selected else 1
        device = device_spec_of(hardware, gpu_count)
        result = cached_fit(shape, quant, device, options, speed_model())
        estimate = vision.image_seconds(shape, quant, device, options, result, speed_model())
        found = measured.get((model.pk, chosen.quant.name.upper(), hardware.pk)) if gpu_count == 1 else None
        from_runs = None
        if estimate is not None and found is not None and found.decode_tps and found.prefill_tps:
            from_runs = (
                estimate.encoder_s
                + (model.image_tokens or 0) / found.prefill_tps
                + estimate.caption_tokens / found.decode_tps
            )
        rows.append(
            {"hardware": hardware, "result": result, "estimate": estimate, "measured": found, "from_runs": from_runs}
        )
    return rows


def _vllm_result(rows: list[QuantRow]) -> fit.FitResult | None:
    """vLLM serves the 16-bit weights: the verdict of the BF16 (or F16) row, where the page has one."""
    for name in ("BF16", "F16"):
        row = next((r for r in rows if r.quant.name.upper() == name), None)
        if row is not None:
            return row.result
    return None


DEFAULT_QUANT = "Q4_K_M"
DEFAULT_BITS = 4.9  # Q4_K_M's effective bits: where a model lacks it, the nearest quant stands in


def default_row(rows: list[QuantRow]) -> QuantRow | None:
    """The quant a page starts with: Q4_K_M, the usual choice, else the quant nearest its size (Q4_0 for a model
    published at BF16 / Q8_0 / Q4_0 only), else the first."""
    exact = next((r for r in rows if r.quant.name == DEFAULT_QUANT), None)
    if exact is not None or not rows:
        return exact
    with_bits = [r for r in rows if r.bits_per_weight]
    if not with_bits:
        return rows[0]
    return min(with_bits, key=lambda r: abs(r.bits_per_weight - DEFAULT_BITS))


def request_quant(form: FitForm) -> str | None:
    return form.data.get("quant") if form.is_bound else None


@require_GET
@cached_page
def model_detail(request: HttpRequest, slug: str) -> HttpResponse:
    model = get_object_or_404(Model.objects.with_quantizations(), slug=slug)
    form = FitForm(request.GET or None, model=model)
    context = _fit_panel_context(model, form)
    context.update(_model_live_context(model, context))
    if request.htmx:
        # The fit panel, and out of band the other parts that follow the settings.
        return render(request, "catalog/_model_live.html", context)
    context.update(
        {
            "picker": _picker_hardware,
            "comparable": _comparable(model),
            "task_scores": vision.task_scores(model.slug) if model.is_vision else None,
            "is_new": model.is_new(timezone.now().date()),
        }
    )
    return render(request, "catalog/model_detail.html", context)


@require_GET
@cached_page
def hardware_list(request: HttpRequest) -> HttpResponse:
    form = HardwareFilterForm(request.GET or None)
    devices = Hardware.objects.all()
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        devices = devices.search(data["q"])
        if data["kind"]:
            devices = devices.of_kind(data["kind"])
        if data["min_memory_gb"]:
            devices = devices.filter(memory_bytes__gte=data["min_memory_gb"] * 10**9)
    page = Paginator(devices, 50).get_page(request.GET.get("page"))
    context = {"form": form, "page": page}
    return _render(request, "catalog/hardware_list.html", "catalog/_hardware_results.html", context)


@require_GET
@cached_page
def hardware_detail(request: HttpRequest, slug: str) -> HttpResponse:
    hardware = get_object_or_404(Hardware, slug=slug)
    form = FitForm(request.GET or None)
    options = form.options()
    # The device's fit table (one row per model, ranked, cached per data version and settings); only the page shown
    # becomes model rows, so the cost of a page does not grow with the catalog.
    table = fit_table(hardware=hardware, options=options, gpu_count=form.value("gpu_count"))
    page = Paginator(table, FITS_PAGE_SIZE).get_page(request.GET.get("page"))
    fits = best_fits_of(page.object_list)
    on_gpu_count = sum(1 for _model_id, verdict, _blob in table if verdict == fit.Verdict.FITS_GPU)
    context = {
        "hardware": hardware,
        "form": form,
        "options": options,
        "page": page,
        "fits": fits,
        "on_gpu": [b for b in fits if b.result.verdict == fit.Verdict.FITS_GPU],
        "offloaded": [b for b in fits if b.result.verdict != fit.Verdict.FITS_GPU],
        "on_gpu_count": on_gpu_count,
        "fits_count": len(table),
        "offloaded_count": len(table) - on_gpu_count,
        "is_cpu": hardware.kind == HardwareKind.CPU,
        # The context in use is always one of the options, so the <select> shows what the list assumes.
        "ctx_ticks": sorted({*CONTEXT_TICKS[:9], options.ctx}),
        "gpu_count": form.value("gpu_count"),
        "ram_gb": form.value("ram_gb"),
        "min_decode_tps": fit.MIN_DECODE_TPS,
        "evidence": speed_evidence(model=None, hardware=hardware),
    }
    return _render(request, "catalog/hardware_detail.html", "catalog/_hardware_fits.html", context)


@require_GET
@cached_page
def compare(request: HttpRequest) -> HttpResponse:
    form = CompareForm(request.GET or None)
    fit_form = FitForm(request.GET or None)
    slugs: list[str] = form.cleaned_data["models"] if form.is_bound and form.is_valid() else []
    by_slug = {m.slug: m for m in Model.objects.with_quantizations().filter(slug__in=slugs)}
    missing = [s for s in slugs if s not in by_slug]
    options = fit_form.options()
    hardware = fit_form.selected_hardware
    columns = []
    for slug in slugs:
        model = by_slug.get(slug)
        if model is None:
            continue
        model_options, clamped = options_for(model=model, options=options)
        rows = quant_rows(model=model, hardware=hardware, options=model_options)
        shape = shape_of(model)
        columns.append(
            {
                "model": model,
                "rows": rows,
                "ctx": model_options.ctx,
                "ctx_clamped": clamped,
                # The KV cache and a hybrid's recurrent state apart, as the model page states them (the memory
                # breakdown's kv_cache_bytes counts the two together).
                "kv_bytes": fit.kv_cache_bytes(shape, model_options.ctx, model_options.kv_type, model_options.users),
                **_kv_layers(shape, model_options.users),
                "pick": recommend_rows(rows=rows, device_kind=hardware.kind) if hardware else None,
                "common": next((r for r in rows if r.quant.name == DEFAULT_QUANT), None),
                "community": _community_runs(model, hardware),
            }
        )
    context = {
        "form": form,
        "fit_form": fit_form,
        "columns": columns,
        "missing": missing,
        "hardware": hardware,
        "options": options,
        "all_models": Model.objects.only("slug", "name").order_by("name"),
        "common_quant": DEFAULT_QUANT,
        "picker": _picker_hardware,
        "too_few": form.is_bound and len(columns) < 2,
        "any_state": any(c["state_bytes"] for c in columns),
        "min_decode_tps": fit.MIN_DECODE_TPS,
        "evidence": speed_evidence(model=None, hardware=hardware) if hardware else None,
    }
    return _render(request, "catalog/compare.html", "catalog/_compare_table.html", context)


def _community_runs(model: Model, hardware: Hardware | None, limit: int = 3) -> dict:
    """What accepted community runs measured for a model (catalog.extensions.measured_speeds: llama.cpp, one GPU,
    pp512/tg128 medians): how many runs on how many devices, the fastest devices at the common quant, and the median
    on the chosen device at that quant."""
    mine = {key: found for key, found in extensions.measured_speeds().items() if key[0] == model.pk}
    runs = sum(found.decode_runs + found.prefill_runs for found in mine.values())
    at_common = [
        (hardware_id, found)
        for (_model_id, quant_name, hardware_id), found in mine.items()
        if quant_name == DEFAULT_QUANT and found.decode_tps
    ]
    at_common.sort(key=lambda pair: -(pair[1].decode_tps or 0))
    names = Hardware.objects.in_bulk([hardware_id for hardware_id, _found in at_common[:limit]]) if at_common else {}
    return {
        "runs": runs,
        "devices": len({key[2] for key in mine}),
        "fastest": [(names[h], found) for h, found in at_common[:limit] if h in names],
        "here": mine.get((model.pk, DEFAULT_QUANT, hardware.pk)) if hardware is not None else None,
    }


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness for load balancers, and the load benchmark's trivial baseline. Touches no database."""
    return HttpResponse("ok", content_type="text/plain")
