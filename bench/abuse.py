"""The load and fault cases of the issue #12 review, against the production server line (gunicorn with
config/gunicorn.py: gthread workers) on PostgreSQL and Redis, each case on servers started for it.

Cases (all by default; --cases picks some):
  burst    200 parallel API submissions, 20 % of them duplicates of others (160 distinct runs, 40 repeats).
  kill     the same burst with one gunicorn worker killed (SIGKILL) after a quarter of the answers; a client whose
           connection breaks retries once, as a client would.
  limits   100 parallel submissions of one user with a limit of 30 runs an hour, spread over two gunicorn
           instances (2 workers each) sharing Redis; the baseline is the same with per-process counts (no Redis).
  demo     10 demo users (distinct client addresses through a trusted proxy header) ask for a generation at once,
           then retry after Retry-After until served (the tiny demo engine unless --demo-model real).
  redis    Redis configured but dead (a closed port): pages and reads are answered, writes refused with 503.

Printed per case: requests, stored, refused (409 duplicate, 429 limited, 422), lost (answered 201 but not in the
database), doubled (one run stored twice), 500s, 503s (by design only where the limiter's store is down), transport
errors. Goal: 0 lost, 0 doubled, 0 500s.

    .venv/bin/python bench/abuse.py
    .venv/bin/python bench/abuse.py --cases burst,kill --concurrency 50

Needs PostgreSQL on 127.0.0.1:5432 as postgres (a scratch database is created and dropped) and Redis on
127.0.0.1:6379 (a database number and key prefix of its own). Run niced on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.scale_out import (  # noqa: E402  (the repository root is on the path only now)
    REDIS_HOST,
    REDIS_PORT,
    cpu_run_payload,
    free_port,
    gunicorn_instances,
    reachable,
    shared_site,
    start_gunicorn,
)

HIGH_LIMIT = 1_000_000
SETUP = """
from benchmarks import services
from catalog.models import HardwareKind
from django.contrib.auth import get_user_model
from tests.factories import make_catalog, make_hardware

make_catalog()
make_hardware(name="Test EPYC", slug="test-epyc", vendor="AMD", kind=HardwareKind.CPU, bandwidth_gbps=51.2,
              memory_bytes=32 * 1024**3, fp16_tflops=None, matrix_tflops=0.384)
user = get_user_model().objects.create_user(username="bench", password="s3cret-pass-42")
print(services.token_create(user=user, name="bench")[1])
"""
RUNS_BY_SPEED = """
import json
from benchmarks.models import BenchmarkRun
print(json.dumps(list(BenchmarkRun.objects.values_list("pk", "avg_ts"))))
"""


@dataclass
class Tally:
    name: str
    statuses: Counter = field(default_factory=Counter)
    transport_errors: int = 0
    retries: int = 0
    acknowledged: dict[int, float] = field(default_factory=dict)  # run id -> speed, from 201 answers
    stored: int | None = None
    lost: int | None = None
    doubled: int | None = None
    notes: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, response: httpx.Response, speed: float | None = None) -> None:
        with self.lock:
            self.statuses[response.status_code] += 1
            if response.status_code == 201 and speed is not None:
                self.acknowledged[response.json()["id"]] = speed

    def line(self) -> str:
        s = self.statuses
        refused = s[409] + s[429] + s[422]
        over_500 = sum(n for code, n in s.items() if code >= 500 and code != 503)
        parts = [
            f"{self.name:<7}",
            f"requests {sum(s.values()) + self.transport_errors:>4}",
            f"stored {self.stored if self.stored is not None else '-':>4}",
            f"refused {refused:>3} (409 {s[409]}, 429 {s[429]}, 422 {s[422]})",
            f"lost {self.lost if self.lost is not None else '-'}",
            f"doubled {self.doubled if self.doubled is not None else '-'}",
            f"500s {over_500}",
            f"503s {s[503]}",
            f"transport errors {self.transport_errors} (retried {self.retries})",
        ]
        return " | ".join(parts) + "".join(f"\n          {note}" for note in self.notes)


def settle(tally: Tally, site) -> None:
    """Compare the 201 answers with the database: lost (acknowledged, absent) and doubled (one speed, two rows)."""
    rows = json.loads(site.python(RUNS_BY_SPEED).strip().splitlines()[-1])
    ids = {pk for pk, _speed in rows}
    by_speed = Counter(speed for _pk, speed in rows)
    tally.stored = len(rows)
    tally.lost = len(set(tally.acknowledged) - ids)
    tally.doubled = sum(count - 1 for count in by_speed.values() if count > 1)


def submit_all(url_for, token: str, speeds: list[float], tally: Tally, concurrency: int, on_answer=None) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    with httpx.Client(headers=headers, timeout=60, limits=limits) as client:

        def one(index: int) -> None:
            speed = speeds[index]
            for attempt in range(2):
                try:
                    response = client.post(f"{url_for(index)}/api/benchmarks", json=cpu_run_payload(speed))
                except httpx.TransportError:
                    with tally.lock:
                        tally.transport_errors += 1
                        if attempt == 0:
                            tally.retries += 1
                    time.sleep(0.5)
                    continue
                tally.record(response, speed)
                if on_answer is not None:
                    on_answer()
                return

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(len(speeds))))


def burst_speeds(base: float, seed: int) -> list[float]:
    distinct = [round(base + i * 0.1, 1) for i in range(160)]
    speeds = distinct + distinct[:40]  # 20 % of the 200 repeat a run sent in the same burst
    random.Random(seed).shuffle(speeds)
    return speeds


def case_burst(site, token, tmp, args) -> Tally:
    tally = Tally("burst")
    with gunicorn_instances(site.env, count=1, log_dir=tmp, workers=2, threads=8) as (server,):
        submit_all(lambda i: server.url, token, burst_speeds(20.0, 1), tally, args.concurrency)
    settle(tally, site)
    tally.notes.append("expected: stored 160, 409 x 40")
    return tally


def case_kill(site, token, tmp, args) -> Tally:
    tally = Tally("kill")
    before = json.loads(site.python(RUNS_BY_SPEED).strip().splitlines()[-1])
    with gunicorn_instances(site.env, count=1, log_dir=tmp, workers=2, threads=8) as (server,):
        answers = [0]
        killed: list[int] = []

        def on_answer() -> None:
            with tally.lock:
                answers[0] += 1
                due = answers[0] == 50 and not killed
                if due:
                    killed.append(0)
            if due:
                killed[0] = server.kill_worker()

        submit_all(lambda i: server.url, token, burst_speeds(60.0, 2), tally, args.concurrency, on_answer)
    settle(tally, site)
    tally.stored -= len(before)  # this case's runs only (the burst's are still there)
    tally.notes.append(f"worker {killed[0] if killed else '?'} killed with SIGKILL after 50 answers")
    tally.notes.append("expected: stored 160, 409 x 40 (a retried run stored before the kill answers 409, not twice)")
    return tally


def case_limits(site, token, tmp, args) -> list[Tally]:
    tallies = []
    for label, shared in (("limits", True), ("no-redis", False)):
        tally = Tally(label)
        env = dict(site.env, RIGFIT_BENCH_RATE_TOKEN="30")
        if not shared:  # the baseline: each worker process counts alone
            env |= {"RIGFIT_REDIS_URL": "", "RIGFIT_BENCH_RATE_STORE": "cache"}
        raw = site.python(
            f"""
            from benchmarks import services
            from django.contrib.auth import get_user_model
            user = get_user_model().objects.create_user(username="limited-{label}", password="s3cret-pass-42")
            print(services.token_create(user=user, name="one")[1])
            """
        ).strip()
        before = json.loads(site.python(RUNS_BY_SPEED).strip().splitlines()[-1])
        base = 100.0 if shared else 120.0
        speeds = [round(base + i * 0.1, 1) for i in range(100)]
        with gunicorn_instances(env, count=2, log_dir=tmp, workers=2, threads=8) as servers:
            submit_all(lambda i: servers[i % 2].url, raw, speeds, tally, args.concurrency)
        settle(tally, site)
        tally.stored -= len(before)
        tally.notes.append(
            "limit 30 runs an hour for the user, 2 instances x 2 workers"
            + (", counts in Redis" if shared else ", counts per process (baseline)")
        )
        tallies.append(tally)
    return tallies


def case_demo(site, token, tmp, args) -> Tally:
    tally = Tally("demo")
    env = dict(
        site.env,
        RIGFIT_TRUSTED_PROXIES="127.0.0.1",
        RIGFIT_DEMO_WARM_START="1",
        RIGFIT_DEMO_MAX_NEW_TOKENS="16",
        RIGFIT_DEMO_THREADS="1",
    )
    if args.demo_model == "tiny":
        from inference.tiny import write_tiny_gguf

        env["RIGFIT_DEMO_MODEL_PATH"] = str(write_tiny_gguf(Path(tmp) / "tiny-gemma3-Q4_K_M.gguf"))
    server = start_gunicorn(env, log_dir=tmp, name="demo", workers=2, threads=8, ready_timeout=120)
    try:
        deadline = time.monotonic() + 300
        ready_in_a_row = 0
        # Each worker loads its own engine and the status answers for whichever worker takes the connection: wait
        # for 12 ready answers in a row (new connections), so both workers are ready before the users come.
        while time.monotonic() < deadline and ready_in_a_row < 12:
            state = httpx.get(f"{server.url}/api/demo/status", timeout=10).json()["state"]
            if state == "error":
                tally.notes.append("the demo engine failed to load: " + server.log()[-500:])
                return tally
            ready_in_a_row = ready_in_a_row + 1 if state == "ready" else 0
            time.sleep(0.1 if state == "ready" else 1)
        served: Counter = Counter()
        busy: Counter = Counter()
        waits: list[float] = []

        def user(index: int) -> None:
            headers = {"X-Forwarded-For": f"203.0.113.{index + 1}"}
            body = {"prompt": f"User {index} asks:", "max_new_tokens": 16}
            started = time.monotonic()
            with httpx.Client(timeout=120) as client:
                while time.monotonic() - started < 240:
                    try:
                        response = client.post(f"{server.url}/api/demo/generate", json=body, headers=headers)
                    except httpx.TransportError:
                        with tally.lock:
                            tally.transport_errors += 1
                        time.sleep(1)
                        continue
                    tally.record(response)
                    if response.status_code != 200:
                        with tally.lock:
                            busy[(response.status_code, response.json().get("message", "")[:70])] += 1
                    if response.status_code == 200:
                        with tally.lock:
                            served[index] += 1
                            waits.append(time.monotonic() - started)
                        return
                    if response.status_code not in (429, 503):
                        return
                    time.sleep(min(float(response.headers.get("Retry-After", "1")), 10.0))

        with ThreadPoolExecutor(10) as pool:
            list(pool.map(user, range(10)))
        tally.notes.append(
            f"users served {len(served)} of 10; 200 x {tally.statuses[200]} after 429 x {tally.statuses[429]} "
            f"and 503 x {tally.statuses[503]} busy answers with Retry-After; "
            + (f"slowest user waited {max(waits):.1f} s" if waits else "nobody served")
            + f" (engine: {args.demo_model})"
        )
        tally.notes.extend(f"{status} x {count}: {message}" for (status, message), count in sorted(busy.items()))
    finally:
        server.stop()
    return tally


def case_redis(site, token, tmp, args) -> Tally:
    tally = Tally("redis")
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    env = dict(site.env, RIGFIT_REDIS_URL=dead, RIGFIT_REDIS_TIMEOUT_S="0.2")
    reads = [
        "/",
        "/models/",
        "/models/gemma-3-270m/",
        "/hardware/",
        "/hardware/geforce-rtx-4090/",
        "/benchmarks/",
        "/api/models",
        "/api/fits?hardware=geforce-rtx-4090",
        "/api/fit?model=gemma-3-270m&hardware=geforce-rtx-4090",
    ]
    with gunicorn_instances(env, count=1, log_dir=tmp, workers=2, threads=8) as (server,):
        with httpx.Client(timeout=30) as client:
            read_statuses = Counter()
            for _ in range(3):
                for path in reads:
                    response = client.get(server.url + path)
                    tally.record(response)
                    read_statuses[response.status_code] += 1
            writes = Counter()
            retry_after = set()
            for i in range(5):
                response = client.post(
                    f"{server.url}/api/benchmarks",
                    json=cpu_run_payload(300.0 + i),
                    headers={"Authorization": f"Bearer {token}"},
                )
                tally.record(response)
                writes[response.status_code] += 1
                retry_after.add(response.headers.get("Retry-After"))
        tally.notes.append(f"reads: {dict(read_statuses)} over {len(reads)} pages x 3")
        tally.notes.append(f"writes: {dict(writes)}, Retry-After {sorted(map(str, retry_after))}")
    return tally


CASES = {"burst": case_burst, "kill": case_kill, "limits": case_limits, "demo": case_demo, "redis": case_redis}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    parser.add_argument("--concurrency", type=int, default=50, help="client threads sending at once")
    parser.add_argument("--demo-model", choices=["tiny", "real"], default="tiny")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.cases.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in CASES]
    if unknown:
        parser.error(f"unknown case(s): {', '.join(unknown)}")
    if not reachable("127.0.0.1", 5432) or not reachable(REDIS_HOST, REDIS_PORT):
        print("needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379", file=sys.stderr)
        return 2
    tallies: list[Tally] = []
    with tempfile.TemporaryDirectory(prefix="rigfit-abuse-") as tmp_name:
        tmp = Path(tmp_name)
        settings = {"RIGFIT_BENCH_RATE_TOKEN": HIGH_LIMIT, "RIGFIT_BENCH_RATE_IP": HIGH_LIMIT}
        with shared_site(tmp, label="abuse", redis_db=12, **settings) as site:
            token = site.python(SETUP).strip().splitlines()[-1]
            for name in chosen:
                started = time.monotonic()
                result = CASES[name](site, token, tmp, args)
                for tally in result if isinstance(result, list) else [result]:
                    tally.notes.append(f"case {name}: {time.monotonic() - started:.1f} s wall")
                    print(tally.line(), flush=True)
                    tallies.append(tally)
    bad = [t.name for t in tallies if t.lost or t.doubled or any(c >= 500 and c != 503 for c in t.statuses)]
    print("goal met (0 lost, 0 doubled, 0 500s)" if not bad else f"goal missed in: {', '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
