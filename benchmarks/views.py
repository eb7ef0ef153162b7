"""Benchmark pages: thin function views; the work is in services.py, selectors.py, plots.py and calibration.py."""

from __future__ import annotations

import csv
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from benchmarks import calibration, llamabench, plots, selectors, services
from benchmarks.forms import LeaderboardFilterForm, LlamaBenchForm, ModerationForm, RunForm, TokenForm
from benchmarks.models import ApiToken, BenchmarkRun, Channel
from catalog import fit, speed_fit
from catalog.caching import data_version
from catalog.models import Model, Quantization
from catalog.services import quant_spec_of, shape_of

CSV_FIELDS = [
    "id",
    "model",
    "quant",
    "hardware",
    "runtime",
    "runtime_version",
    "build_commit",
    "backend",
    "test",
    "n_prompt",
    "n_gen",
    "n_depth",
    "avg_ts",
    "stddev_ts",
    "prompt_tps",
    "decode_tps",
    "prefill_tps",
    "ttft_ms",
    "n_gpu_layers",
    "n_threads",
    "n_batch",
    "n_ubatch",
    "type_k",
    "type_v",
    "flash_attn",
    "test_time",
    "submitted_at",
    "channel",
    "source_url",
]


# A spreadsheet runs a cell starting with one of these as a formula (=HYPERLINK(...), @SUM(...)); OWASP's
# "CSV Injection" advice: prefix such a cell with a single quote so it is shown as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """`value` as it may go into a CSV cell: text that a spreadsheet would run as a formula gets a leading quote."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


# Moderating is a permission of its own (the "Benchmark moderators" group holds it), not every staff member's.
MODERATE = services.MODERATE_PERMISSION

# Shown first on the form; the rest sit under "More details".
CORE_FIELDS = [
    "model_slug",
    "quant",
    "hardware",
    "runtime",
    "backend",
    "n_prompt",
    "n_gen",
    "avg_ts",
    "stddev_ts",
    "samples_ts",
    "prompt_tps",
    "ttft_ms",
]


def _rate_limited(request: HttpRequest, *, runs: int = 1) -> HttpResponse | None:
    try:
        services.check_submission_rate(request=request, runs=runs)
    except services.RateLimited as exc:
        return _too_many(request, exc)
    except services.LimiterUnavailable as exc:
        return _unavailable(request, exc)
    return None


def _too_many(request: HttpRequest, exc: services.RateLimited) -> HttpResponse:
    context = {"retry_after": exc.retry_after, "message": str(exc)}
    response = render(request, "benchmarks/rate_limited.html", context, status=429)
    response["Retry-After"] = str(exc.retry_after)
    return response


def _unavailable(request: HttpRequest, exc: services.LimiterUnavailable) -> HttpResponse:
    response = render(request, "benchmarks/unavailable.html", {"message": str(exc)}, status=503)
    response["Retry-After"] = str(exc.retry_after)
    return response


def _submit_context(request: HttpRequest, form: RunForm, bench_form: LlamaBenchForm | None = None) -> dict[str, Any]:
    return {
        "form": form,
        "core_fields": [form[name] for name in CORE_FIELDS],
        "more_fields": [field for field in form if field.name not in CORE_FIELDS],
        "more_open": any(name not in CORE_FIELDS for name in form.errors),
        "bench_form": bench_form or LlamaBenchForm(initial=request.GET.dict()),
        "anonymous": not request.user.is_authenticated,
        "catalog_names": _catalog_names,
    }


@require_http_methods(["GET", "POST"])
def submit(request: HttpRequest) -> HttpResponse:
    """The submission form. GET prefills it from query parameters (model_slug, quant, hardware, avg_ts, ...)."""
    if request.method == "GET":
        initial = request.GET.dict()
        if initial.get("runtime") == "rigfit" and not initial.get("hardware"):
            # A run of this site's own demo, which ran on this server: the probe's match of it.
            initial["hardware"] = _server_hardware(backend=initial.get("backend") or "cpu")
        form = RunForm(initial=initial)
        return render(request, "benchmarks/submit.html", _submit_context(request, form))
    refused = _rate_limited(request)
    if refused is not None:
        return refused
    form = RunForm(request.POST)
    if not form.is_valid():
        return render(request, "benchmarks/submit.html", _submit_context(request, form), status=422)
    try:
        run, _verdict = services.submit_cleaned(cleaned=form.cleaned_data, channel=Channel.WEB, submitter=request.user)
    except services.Duplicate as exc:
        form.add_error(None, "This run was submitted before.")
        context = {**_submit_context(request, form), "duplicate_id": exc.run_id}
        return render(request, "benchmarks/submit.html", context, status=409)
    messages.success(request, "Thank you: your run is stored.")
    return redirect(run)


def _server_hardware(*, backend: str) -> str:
    """This server, as the probe detects and matches it (probe.matching): the catalog slug of its CPU for a CPU
    run (the demo's), of its largest GPU otherwise; where nothing in the catalog matches, the detected name (the
    run is then held for review as unknown hardware)."""
    from catalog.models import Hardware
    from probe.detect import detect
    from probe.matching import match_hardware
    from probe.views import best_match

    report = detect()
    candidates = list(Hardware.objects.only("slug", "name", "aliases", "memory_bytes", "vendor", "popular", "kind"))
    if backend == "cpu":
        match = match_hardware(report.cpu.model, report.memory.total_bytes, candidates)
        detected = report.cpu.model
    else:
        match = best_match(report, candidates)
        gpu = report.primary_gpu
        detected = gpu.name if gpu is not None else report.cpu.model
    return match.slug if match is not None else (detected or "")[:200]


@require_POST
def preview(request: HttpRequest) -> HttpResponse:
    """What would happen to the run in the form, and how it compares with others on the same hardware (htmx)."""
    form = RunForm(request.POST)
    context: dict[str, Any] = {"form": form}
    if form.is_valid():
        run, verdict = services.preview(cleaned=form.cleaned_data, trusted=request.user.is_authenticated)
        context.update({"run": run, "verdict": verdict, "others": selectors.same_hardware_runs(run)})
    return render(request, "benchmarks/_preview.html", context)


@require_POST
def submit_llama_bench(request: HttpRequest) -> HttpResponse:
    bench_form = LlamaBenchForm(request.POST, request.FILES)
    form = RunForm(initial=request.GET.dict())
    if not bench_form.is_valid():
        return render(request, "benchmarks/submit.html", _submit_context(request, form, bench_form), status=422)
    data = bench_form.cleaned_data
    try:
        result = services.submit_llama_bench(
            text=data["text"],
            hardware=data["hardware"],
            model_slug=data["model_slug"],
            quant=data["quant"],
            extra={"os": data["os"]} if data["os"] else None,
            channel=Channel.WEB,
            submitter=request.user,
            charge=lambda runs: services.check_submission_rate(request=request, runs=runs),
        )
    except services.RateLimited as exc:
        return _too_many(request, exc)
    except services.LimiterUnavailable as exc:
        return _unavailable(request, exc)
    except (llamabench.LlamaBenchError, services.Unrecognised) as exc:
        bench_form.add_error("output", str(exc))
        return render(request, "benchmarks/submit.html", _submit_context(request, form, bench_form), status=422)
    if not result.stored:
        for error in result.errors:
            bench_form.add_error("output", error)
        if result.duplicates:
            bench_form.add_error("output", "Every test in this output was submitted before.")
        status = 409 if result.duplicates and not result.errors else 422
        return render(request, "benchmarks/submit.html", _submit_context(request, form, bench_form), status=status)
    return render(request, "benchmarks/batch_result.html", {"result": result}, status=201)


@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(BenchmarkRun.objects.with_relations(), pk=pk)
    if not services.run_visible_to(run=run, user=request.user):
        raise Http404("No such run.")
    decisions = run.decisions.select_related("moderator")
    roofline = services.roofline_for(run)
    return render(
        request,
        "benchmarks/run_detail.html",
        {"run": run, "decisions": decisions, "roofline": roofline, "others": selectors.same_hardware_runs(run)},
    )


@require_GET
def leaderboard(request: HttpRequest) -> HttpResponse:
    form = LeaderboardFilterForm(request.GET or None)
    filters = form.filters()
    runs = BenchmarkRun.objects.accepted().filtered(**filters).with_relations().order_by(*form.ordering())
    page = Paginator(runs, 50).get_page(request.GET.get("page"))
    # The filters and sort order, kept by every link on the page (pages, CSV, JSON); never the page number itself.
    kept = request.GET.copy()
    kept.pop("page", None)
    summaries = selectors.summarise(
        BenchmarkRun.objects.accepted()
        .filtered(**{**filters, "test": filters.get("test") or ""})
        .select_related("model", "quantization", "hardware")
    )
    context = {
        "form": form,
        "page": page,
        "summaries": summaries,
        "query": kept.urlencode(),
        "plot_query": _plot_query(filters),
        "active": {name: value for name, value in filters.items() if value},
        "loosened": _loosened(filters) if not page.object_list else [],
        "catalog_names": _catalog_names,
    }
    template = "benchmarks/_leaderboard_results.html" if request.htmx else "benchmarks/leaderboard.html"
    return render(request, template, context)


def _loosened(filters: dict[str, Any]) -> list[dict[str, Any]]:
    """For an empty result: how many accepted runs each filter hides (the same query without it), most first."""
    from urllib.parse import urlencode

    active = {name: value for name, value in filters.items() if value}
    found = []
    for name in active:
        rest = {k: v for k, v in active.items() if k != name}
        count = BenchmarkRun.objects.accepted().filtered(**rest).count()
        if count:
            found.append({"without": name, "count": count, "query": urlencode(rest)})
    return sorted(found, key=lambda item: -item["count"])


def _catalog_names() -> dict[str, list[str]]:
    """The <datalist> suggestions of the benchmark forms: every catalog model and device name (called by the
    template only where it renders the lists)."""
    from catalog.models import Hardware

    # The popular devices and every device with an accepted run; other names still match when typed.
    hardware = Hardware.objects.filter(
        Q(popular=True) | Q(pk__in=BenchmarkRun.objects.accepted().values("hardware_id"))
    ).order_by("name")
    return {
        "models": list(Model.objects.order_by("name").values_list("name", flat=True)),
        "hardware": list(hardware.values_list("name", flat=True)),
    }


def _plot_query(filters: dict[str, Any]) -> str:
    from urllib.parse import urlencode

    return urlencode({k: v for k, v in filters.items() if v and k in {"model", "quant", "runtime", "backend"}})


@require_GET
def export_csv(request: HttpRequest) -> StreamingHttpResponse:
    """Every accepted run (filters as on the leaderboard), as CSV."""
    form = LeaderboardFilterForm(request.GET or None)
    filters = form.filters()
    runs = BenchmarkRun.objects.accepted().filtered(**filters).with_relations().order_by("id")

    class Echo:
        def write(self, value: str) -> str:
            return value

    writer = csv.writer(Echo())

    def rows() -> Any:
        yield writer.writerow(CSV_FIELDS)
        for run in runs.iterator(chunk_size=500):
            values = {
                "model": run.model.slug,
                "quant": run.quant_name,
                "hardware": run.hardware.slug if run.hardware else run.hardware_name,
            }
            yield writer.writerow(
                [csv_cell(values[name] if name in values else getattr(run, name)) for name in CSV_FIELDS]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="rigfit-benchmarks.csv"'
    return response


@login_required
@permission_required(MODERATE, raise_exception=True)
@require_GET
def moderation(request: HttpRequest) -> HttpResponse:
    runs = BenchmarkRun.objects.awaiting_review().with_relations().order_by("submitted_at", "id")[:200]
    decisions = selectors.recent_decisions()
    return render(
        request, "benchmarks/moderation.html", {"runs": runs, "decisions": decisions, "form": ModerationForm()}
    )


@login_required
@permission_required(MODERATE, raise_exception=True)
@require_POST
def moderate(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(BenchmarkRun, pk=pk)
    form = ModerationForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Run {pk}: a decision and a reason are required.")
        return redirect("benchmarks:moderation")
    services.moderate(
        run=run, moderator=request.user, decision=form.cleaned_data["decision"], reason=form.cleaned_data["reason"]
    )
    messages.success(request, f"Run {pk} {form.cleaned_data['decision']}.")
    return redirect("benchmarks:moderation")


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    new_token = None
    if request.method == "POST" and form.is_valid():
        _token, new_token = services.token_create(user=request.user, name=form.cleaned_data["name"])
        form = TokenForm()
    user_tokens = ApiToken.objects.filter(user=request.user)
    status = 201 if new_token else (422 if request.method == "POST" else 200)
    return render(
        request, "benchmarks/tokens.html", {"form": form, "tokens": user_tokens, "new_token": new_token}, status=status
    )


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    services.token_revoke(token=token)
    messages.success(request, f"Token '{token.name}' revoked.")
    return redirect("benchmarks:tokens")


# --- plots -------------------------------------------------------------------------------------------------------


def _svg(content: str) -> HttpResponse:
    response = HttpResponse(content, content_type="image/svg+xml; charset=utf-8")
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response


@require_GET
def plot_by_hardware(request: HttpRequest) -> HttpResponse:
    """Median tokens/sec per device (decode by default, ?test=pp for prompt) with spread bars."""
    form = LeaderboardFilterForm(request.GET or None)
    filters = form.filters()
    metric = "prefill" if filters.get("test") == "pp" else "decode"
    runs = (
        BenchmarkRun.objects.accepted()
        .filtered(**{**filters, "test": ""})
        .select_related("model", "quantization", "hardware")
    )
    bars = []
    summaries = selectors.summarise(runs)
    one_setup = len({(s.model_id, s.quant_name) for s in summaries}) == 1
    for summary in summaries:
        spread = summary.prefill if metric == "prefill" else summary.decode
        if spread is not None:
            label = summary.hardware.name
            if not one_setup:
                label += f" · {summary.model.name} {summary.quant_name}"
            bars.append(
                plots.Bar(label=label, median=spread.median, low=spread.low, high=spread.high, count=spread.count)
            )
    bars.sort(key=lambda bar: -bar.median)
    title = f"{'Prompt' if metric == 'prefill' else 'Generation'} tokens/sec by hardware"
    if one_setup and summaries:
        title += f": {summaries[0].model.name} {summaries[0].quant_name}"
    return _svg(plots.bars_by_hardware(bars[:20], title=title))


@require_GET
def plot_bandwidth(request: HttpRequest) -> HttpResponse:
    """Decode tokens/sec against memory bandwidth for one model (and quant), with the roofline drawn."""
    form = LeaderboardFilterForm(request.GET or None)
    filters = form.filters()
    model = Model.objects.filter(slug=filters.get("model") or "").first()
    points_runs = selectors.decode_points(model=model, quant_name=filters.get("quant") or "")
    points = [
        plots.Point(x=run.hardware.bandwidth_gbps, y=run.decode_tps, label=f"{run.hardware.name} ({run.runtime})")
        for run in points_runs
        if run.decode_tps is not None
    ]
    roofline: list[tuple[float, float]] = []
    title = "Decode tokens/sec vs memory bandwidth"
    if model is not None:
        quant = Quantization.objects.filter(model=model, name__iexact=filters.get("quant") or "").first()
        spec = quant_spec_of(quant) if quant else None
        if spec is None and filters.get("quant"):
            spec = fit.QuantSpec(name=filters["quant"].upper())
        if spec is not None:
            x_max = plots.nice_max(max([p.x for p in points] + [100.0]))
            shape = shape_of(model)
            try:
                roofline = [
                    (x, fit.roofline_decode_tps(shape, spec, x, ctx=512))
                    for x in (x_max * i / 20 for i in range(1, 21))
                ]
            except ValueError:
                roofline = []
            title = f"{model.name} {spec.name}: decode tokens/sec vs memory bandwidth"
    return _svg(plots.bandwidth_scatter(points, roofline=roofline, title=title))


def _accuracy() -> calibration.Accuracy:
    """Fitting and scoring read every accepted run: once per data version, shared by the page and its plot."""
    key = f"rigfit:accuracy:{data_version()}"
    result = cache.get(key)
    if result is None:
        result = calibration.accuracy()
        cache.set(key, result, 600)
    return result


@require_GET
def accuracy_page(request: HttpRequest) -> HttpResponse:
    result = _accuracy()
    return render(
        request,
        "benchmarks/accuracy.html",
        {
            "table": result.table,
            "observations": len(result.observations),
            "sources": len({obs.source for obs in result.observations}),
            "model": result.model,
            "band_percentile": speed_fit.BAND_PERCENTILE,
            "submit_url": reverse("benchmarks:submit"),
        },
    )


@require_GET
def plot_accuracy(request: HttpRequest) -> HttpResponse:
    """Held-out estimate against measured speed, ?test=tg (decode, the default) or pp (prompt processing)."""
    test = "pp" if request.GET.get("test") == "pp" else "tg"
    predictions = [p for p in _accuracy().predictions if p.obs.test == test]
    points = [
        (plots.Point(x=p.obs.measured_tps, y=p.estimate_tps, label=p.obs.label), p.obs.backend) for p in predictions
    ]
    title = f"{'Prompt processing' if test == 'pp' else 'Decode'}: estimate (without the run's source) vs measured"
    return _svg(plots.estimate_scatter(points, title=title))
