"""Memory of the production server (`make serve-prod`: gunicorn, config/gunicorn.py) with the demo warm, per worker.

    .venv/bin/python bench/serve_memory.py [--workers 2] [--generations 4] [--cache-dir DIR]

Runs, in one go and in this order: the server with the demo off (RIGFIT_DEMO_ENABLED=0: the same server without
any model, the baseline), then with the demo warm-started in every worker (RIGFIT_DEMO_WARM_START=1) after a few
generations through POST /api/demo/generate. For each it prints every process's resident set (RSS), proportional
set (PSS: shared pages split between the processes that map them, so the PSS of all processes adds up to what the
server really holds) and unique set (USS), from psutil's memory_full_info, and the totals; then what the demo
adds per worker and in all, and the ratio to the baseline. Figures are MiB (2^20 bytes).

The converted model is built once first, in a separate process, into --cache-dir (default var/models), so the
workers only load it. Warm start loads the model in each worker as it starts; the script waits until every
worker's resident memory has stopped growing (three equal readings, 2 s apart, within 1 %) before generating.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MIB = 2**20


def _env(cache_dir: Path, var_dir: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RIGFIT_", "GUNICORN_", "DJANGO_"))}
    return {
        **base,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"sqlite:///{var_dir / 'db.sqlite3'}",
        "RIGFIT_VAR_DIR": str(var_dir),
        "RIGFIT_DEMO_CACHE_DIR": str(cache_dir),
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def _build_cache(env: dict[str, str]) -> None:
    code = "import django; django.setup()\nfrom inference.engine import get_engine\nget_engine().load()\n"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=1800)


def _stable(pids: list[int], *, rounds: int = 3, pause_s: float = 2.0, timeout_s: float = 900) -> None:
    import psutil

    history: list[list[int]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        history.append([psutil.Process(pid).memory_info().rss for pid in pids])
        last = history[-rounds:]
        if len(last) == rounds and all(
            max(r[i] for r in last) <= 1.01 * min(r[i] for r in last) for i in range(len(pids))
        ):
            return
        time.sleep(pause_s)
    raise RuntimeError("worker memory did not settle")


def measure(label: str, env: dict[str, str], *, workers: int, generations: int, demo: bool) -> dict[str, float]:
    import httpx
    import psutil

    from tests.scale_out import free_port, wait_ready

    port = free_port()
    env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": str(workers)}
    command = [str(Path(sys.executable).with_name("gunicorn")), "-c", "config/gunicorn.py", "config.wsgi:application"]
    log_path = Path(env["RIGFIT_VAR_DIR"]) / f"gunicorn-{port}.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/healthz", server, timeout=120, log_path=log_path)
        master = psutil.Process(server.pid)
        deadline = time.monotonic() + 60
        while len(master.children()) < workers and time.monotonic() < deadline:
            time.sleep(0.2)
        pids = [child.pid for child in master.children()]
        if demo:
            deadline = time.monotonic() + 900
            while httpx.get(f"{url}/api/demo/status", timeout=30).json()["state"] != "ready":
                if time.monotonic() > deadline:
                    raise RuntimeError("the demo did not get ready")
                time.sleep(1)
            _stable(pids)
            for index in range(generations):  # fresh connections: gunicorn hands them to either worker
                body = {"prompt": f"Tell me a fact about the number {index}.", "max_new_tokens": 32}
                with httpx.Client(timeout=300) as client:
                    answer = client.post(f"{url}/api/demo/generate", json=body)
                if answer.status_code != 200:
                    raise RuntimeError(f"generate answered {answer.status_code}: {answer.text}")
        else:
            for _ in range(generations):
                httpx.get(f"{url}/healthz", timeout=30)
        _stable(pids)
        rows = [("master", master)] + [(f"worker {i + 1}", psutil.Process(pid)) for i, pid in enumerate(pids)]
        totals = {"rss": 0.0, "pss": 0.0, "uss": 0.0}
        print(f"\n{label}: gunicorn, {workers} gthread workers")
        print(f"  {'process':<10} {'pid':>7} {'RSS MiB':>9} {'PSS MiB':>9} {'USS MiB':>9}")
        for name, proc in rows:
            info = proc.memory_full_info()
            print(f"  {name:<10} {proc.pid:>7} {info.rss / MIB:>9.1f} {info.pss / MIB:>9.1f} {info.uss / MIB:>9.1f}")
            for key in ("rss", "pss", "uss"):
                totals[key] += getattr(info, key) / MIB
        print(f"  {'total':<10} {'':>7} {totals['rss']:>9.1f} {totals['pss']:>9.1f} {totals['uss']:>9.1f}")
        return totals
    finally:
        server.terminate()
        server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "var" / "models")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rigfit-serve-memory-") as tmp:
        var_dir = Path(tmp)
        env = _env(args.cache_dir, var_dir)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True
        )
        _build_cache(env)
        off = measure(
            "Demo off (RIGFIT_DEMO_ENABLED=0)",
            {**env, "RIGFIT_DEMO_ENABLED": "0"},
            workers=args.workers,
            generations=args.generations,
            demo=False,
        )
        on = measure(
            "Demo warm (RIGFIT_DEMO_WARM_START=1)",
            {**env, "RIGFIT_DEMO_WARM_START": "1"},
            workers=args.workers,
            generations=args.generations,
            demo=True,
        )
    added = on["pss"] - off["pss"]
    print(
        f"\nThe demo adds {added:.0f} MiB PSS in all, {added / args.workers:.0f} MiB per worker "
        f"({on['pss']:.0f} vs {off['pss']:.0f} MiB: {on['pss'] / off['pss']:.2f}x the server without it)."
    )


if __name__ == "__main__":
    main()
