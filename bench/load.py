"""Load benchmark: the production server on loopback, wrk at 16 connections, bounded in time.

Measures, in one run, a trivial view (/healthz: the baseline), the model page (with and without htmx), a hardware
page and /api/fit, and prints requests/s, p50 and p99 for each with the ratio to the baseline.

    make bench                         # seeds the database first
    .venv/bin/python bench/load.py --duration 10 --connections 16

Needs `wrk` (Debian package `wrk`; installed here when missing and running as root).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"

TARGETS = {
    "trivial /healthz (baseline)": "/healthz",
    "model page": "/models/llama-3-1-8b/?hardware=nvidia-geforce-rtx-4090&ctx=8192",
    "model page, htmx swap": "/models/llama-3-1-8b/?hardware=nvidia-geforce-rtx-4090&ctx=16384",
    "hardware page": "/hardware/nvidia-geforce-rtx-4090/?ctx=8192",
    "/api/fit": "/api/fit?model=llama-3-1-8b&quant=Q4_K_M&hardware=nvidia-geforce-rtx-4090&ctx=8192",
}
SERVERS = {
    "wsgi": lambda args: ["config.wsgi:application", "-k", "gthread", "--threads", str(args.threads)],
    "asgi": lambda args: ["config.asgi:application", "-k", "uvicorn.workers.UvicornWorker"],
}
HTMX_TARGETS = {"model page, htmx swap"}
# Every request a different context length: measures the pages when the page cache does not help.
UNCACHED_TARGETS = {
    "model page, uncached": "/models/llama-3-1-8b/?hardware=nvidia-geforce-rtx-4090&ctx=",
    "htmx swap, uncached": "/models/llama-3-1-8b/?hardware=nvidia-geforce-rtx-4090&ctx=",
    "/api/fit, uncached": "/api/fit?model=llama-3-1-8b&quant=Q4_K_M&hardware=nvidia-geforce-rtx-4090&ctx=",
}
RANDOM_CTX_LUA = """
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "{prefix}" .. math.random(512, 131072), {headers})
end
"""


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(name: str, output: str) -> Result:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    percentiles = dict(
        (p, _ms(v, u)) for p, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    )
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        errors += int(match.group(1))
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output):
        errors += sum(int(g) for g in match.groups())
    return Result(name, rps, percentiles["50"], percentiles["99"], errors)


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, stdout=subprocess.DEVNULL)
        return shutil.which("wrk") or sys.exit("wrk did not install")
    sys.exit("wrk is needed: apt-get install wrk")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(port: int, deadline_s: float = 30.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit("server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per target")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8, help="threads per worker (WSGI server)")
    parser.add_argument(
        "--server",
        choices=sorted(SERVERS),
        default="wsgi",
        help="wsgi: gunicorn gthread, what `make serve-prod` runs; asgi: gunicorn with uvicorn workers",
    )
    args = parser.parse_args()
    wrk = ensure_wrk()
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "RIGFIT_LOG_LEVEL": "ERROR"}
    command = [str(VENV_BIN / "gunicorn"), *SERVERS[args.server](args), "-w", str(args.workers),
               "-b", f"127.0.0.1:{port}", "--log-level", "warning"]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    try:
        wait_for(port)
        base = f"http://127.0.0.1:{port}"
        results = []
        run = [wrk, "-c", str(args.connections), "-t", "2", "-d", str(args.duration), "--latency"]
        for name, path in TARGETS.items():
            headers = ["-H", "HX-Request: true"] if name in HTMX_TARGETS else []
            # A short warm-up fills per-process caches, as on a running site.
            subprocess.run([wrk, "-c", "4", "-t", "1", "-d", "2", *headers, base + path], capture_output=True)
            out = subprocess.run([*run, *headers, base + path], capture_output=True, text=True, check=True).stdout
            results.append(parse_wrk(name, out))
        # The baseline again, last: how much the machine drifted during the run.
        subprocess.run([*run, base + "/healthz"], capture_output=True)
        out = subprocess.run([*run, base + "/healthz"], capture_output=True, text=True, check=True).stdout
        drift = parse_wrk("trivial /healthz (again)", out)
        with tempfile.TemporaryDirectory() as scratch:
            for name, prefix in UNCACHED_TARGETS.items():
                lua_headers = '{["HX-Request"] = "true"}' if "htmx" in name else "nil"
                script = Path(scratch) / "random_ctx.lua"
                script.write_text(RANDOM_CTX_LUA.replace("{prefix}", prefix).replace("{headers}", lua_headers))
                out = subprocess.run(
                    [*run, "-s", str(script), base + "/"], capture_output=True, text=True, check=True
                ).stdout
                results.append(parse_wrk(name, out))
        results.append(drift)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    baseline = results[0]
    setup = f"{args.server} server: {args.connections} connections, {args.workers} workers"
    print(f"\n{setup}, {args.duration}s per target, {os.cpu_count()} CPUs")
    header = ("target", "req/s", "p50 ms", "p99 ms", "errors", "rps vs base", "p99 vs base")
    print(f"{header[0]:30} " + " ".join(f"{h:>12}" for h in header[1:]))
    for r in results:
        print(
            f"{r.name:30} {r.rps:12.0f} {r.p50_ms:12.1f} {r.p99_ms:12.1f} {r.errors:12d} "
            f"{r.rps / baseline.rps:12.2f} {r.p99_ms / baseline.p99_ms:12.2f}"
        )
    if any(r.errors for r in results):
        sys.exit("some requests failed")


if __name__ == "__main__":
    main()
