"""/api/models?fits=DEVICE: the shared fit table against the one-by-one fit it replaced, in the same run.

    nice -n 10 .venv/bin/python bench/api_models_fits.py [--models 1000] [--repeat 9] [--device apple-m2-max-96gb]

A scratch SQLite database (bench/catalog_scale.py's: migrate, load_seed), grown to --models with that script's
scaled copies of the seeded models. Each request goes through Django's test client in this process at a context not
asked just before; the median of --repeat requests, wall-clock and this process's CPU time, with /healthz timed in the
same run as the baseline.

- one by one: the endpoint as it was (services.best_fits over the filtered models: one best_quant per model), the
  engine's memo emptied before each request, as a new context finds it;
- table, new settings: the table for that device and context not built yet (the engine's memo emptied too): the first
  request builds it (fit_batch, every model x quant at once);
- table, built: the table already cached (any later filter, sort or page on that device and context).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.catalog_scale import CONTEXTS, generate, setup  # noqa: E402  (after the path insert above)


def one_by_one(*, models, hardware, options):
    """/api/models?fits= before the fit table: best_fits over the filtered models."""
    from catalog.services import best_fits

    return [best.model for best in best_fits(hardware=hardware, options=options, models=models.with_quantizations())]


def forget(*, table: bool) -> None:
    from django.core.cache import caches

    from catalog import services

    for memo in (services.cached_fit, services.cached_memory, services.cached_max_context):
        memo.cache_clear()
    if table:
        store = caches["default"]
        for key in [k for k in store._cache if ":catalog:fit-table:" in k]:
            store.delete(key.split(":", 2)[2])


def median_ms(client, url: str, repeat: int, *, state: str) -> tuple[float, float]:
    walls, cpus = [], []
    for i in range(repeat + 1):
        target = url.format(ctx=CONTEXTS[i % len(CONTEXTS)])
        if state == "built":
            client.get(target + "&page=2")  # an earlier request on this device and context built the table
        elif state != "baseline":
            forget(table=True)
        started, started_cpu = time.perf_counter(), time.process_time()
        response = client.get(target)
        wall, cpu = (time.perf_counter() - started) * 1000, (time.process_time() - started_cpu) * 1000
        assert response.status_code == 200, (target, response.status_code)
        if i:  # the first request warms imports
            walls.append(wall)
            cpus.append(cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--device", default="apple-m2-max-96gb")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        setup(Path(tmp))
        count = generate(args.models)
        from django.test import Client

        from catalog import api

        client = Client()
        url = f"/api/models?fits={args.device}&ctx={{ctx}}"
        base, base_cpu = median_ms(client, "/healthz?{ctx}", args.repeat * 3, state="baseline")
        table_path = api.models_that_run
        rows = {}
        api.models_that_run = one_by_one  # type: ignore[assignment]
        try:
            rows["one by one"] = median_ms(client, url, args.repeat, state="new settings")
        finally:
            api.models_that_run = table_path  # type: ignore[assignment]
        rows["table, new settings"] = median_ms(client, url, args.repeat, state="new settings")
        rows["table, built"] = median_ms(client, url, args.repeat, state="built")
        again, again_cpu = median_ms(client, "/healthz?{ctx}", args.repeat * 3, state="baseline")
        print(f"{count} models; GET {url.format(ctx='...')}; median of {args.repeat}, in-process")
        header = f"{'ms wall':>9} {'x healthz':>10} {'ms CPU':>9} {'x healthz':>10} {'one by one / this (CPU)':>24}"
        print(f"{'':24} {header}")
        print(f"{'/healthz':24} {base:9.2f} {'':>10} {base_cpu:9.2f}")
        old_cpu = rows["one by one"][1]
        for name, (wall, cpu) in rows.items():
            print(f"{name:24} {wall:9.1f} {wall / base:10.0f} {cpu:9.1f} {cpu / base_cpu:10.0f} {old_cpu / cpu:24.1f}")
        print(f"{'/healthz (again)':24} {again:9.2f} {'':>10} {again_cpu:9.2f}")


if __name__ == "__main__":
    main()
