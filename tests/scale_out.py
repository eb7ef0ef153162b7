"""Real server processes for the scale-out tests and bench/abuse.py: gunicorn instances (config/gunicorn.py, the
production server line) on one PostgreSQL database and one Redis, each made for the run and removed after it.

- PostgreSQL: 127.0.0.1:5432 as `postgres` (trust). Every run gets its own scratch database
  (test_<label>_<pid>_<n>), created here and dropped after, so the suite's own `test` database is never touched.
- Redis: 127.0.0.1:6379, a database number and a key prefix per run (RIGFIT_CACHE_KEY_PREFIX); the run's keys are
  deleted after it.

    with shared_site(tmp_path, label="scaleout") as site:
        token = site.python("...")                    # set data up through the ORM, in a child process
        with gunicorn_instances(site.env, count=2, log_dir=tmp_path) as servers:
            httpx.post(f"{servers[0].url}/api/...")

Nothing here imports Django: the servers and the setup code run in child processes with the environment built by
`site_env`, as production would.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN_URL = f"postgres://postgres@{PG_HOST}:{PG_PORT}/postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
_serial = itertools.count()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_postgres_and_redis() -> None:
    """Skip (with the reason) where PostgreSQL or Redis does not answer; with CI=true a missing Redis fails instead,
    so CI cannot pass without the test that needs it having run."""
    import pytest

    if not reachable(PG_HOST, PG_PORT):
        pytest.skip(f"PostgreSQL does not answer on {PG_HOST}:{PG_PORT}: the scale-out test needs one shared database")
    if not reachable(REDIS_HOST, REDIS_PORT):
        message = f"Redis does not answer on {REDIS_HOST}:{REDIS_PORT}: limits across processes cannot be tested"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)


@contextmanager
def scratch_database(label: str = "scaleout") -> Iterator[str]:
    """A new, empty PostgreSQL database for this run; its DATABASE_URL. Dropped (connections and all) after."""
    import psycopg

    name = f"test_{label}_{os.getpid()}_{next(_serial)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgres://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def scratch_redis(label: str = "scaleout", db: int = 11) -> Iterator[tuple[str, str]]:
    """(RIGFIT_REDIS_URL, RIGFIT_CACHE_KEY_PREFIX) for this run; its keys are deleted after."""
    import redis

    prefix = f"rigfit-{label}-{os.getpid()}-{next(_serial)}"
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"
    try:
        yield url, prefix
    finally:
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db, socket_timeout=5)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def site_env(*, database_url: str, var_dir: Path, redis_url: str = "", key_prefix: str = "rigfit", **extra: object):
    """The environment of one site process: this process's, less every RIGFIT_/DJANGO_/GUNICORN_ setting, plus the
    given database, Redis and var directory. `extra` adds settings (RIGFIT_BENCH_RATE_TOKEN="5", ...)."""
    prefixes = ("RIGFIT_", "DJANGO_", "GUNICORN_", "SENTRY_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes) and k != "DATABASE_URL"}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": database_url,
            "RIGFIT_REDIS_URL": redis_url,
            "RIGFIT_CACHE_KEY_PREFIX": key_prefix,
            "RIGFIT_VAR_DIR": str(var_dir),
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update({name: str(value) for name, value in extra.items()})
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """`manage.py <args>` in a child process; its stdout. Raises with the output when it fails."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def python(env: dict[str, str], code: str, timeout: float = 120) -> str:
    """Run `code` after django.setup() in a child process with `env`; what it prints."""
    script = "import django\ndjango.setup()\n" + textwrap.dedent(code)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"setup code exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@dataclass
class Site:
    """One site's data stores and its environment: a scratch PostgreSQL database, migrated, and a Redis prefix."""

    env: dict[str, str]
    database_url: str
    redis_url: str
    key_prefix: str
    var_dir: Path

    def python(self, code: str, timeout: float = 120) -> str:
        return python(self.env, code, timeout=timeout)

    def manage(self, *args: str, timeout: float = 300) -> str:
        return manage(self.env, *args, timeout=timeout)


@contextmanager
def shared_site(tmp_dir: Path, *, label: str = "scaleout", redis_db: int = 11, **settings: object) -> Iterator[Site]:
    """A migrated scratch PostgreSQL database and a Redis prefix, with the environment site processes share."""
    var_dir = Path(tmp_dir) / f"var-{label}"
    var_dir.mkdir(parents=True, exist_ok=True)
    with scratch_database(label) as database_url, scratch_redis(label, db=redis_db) as (redis_url, prefix):
        env = site_env(database_url=database_url, var_dir=var_dir, redis_url=redis_url, key_prefix=prefix, **settings)
        manage(env, "migrate", "--noinput")
        yield Site(env=env, database_url=database_url, redis_url=redis_url, key_prefix=prefix, var_dir=var_dir)


@dataclass
class Gunicorn:
    """One gunicorn master (config/gunicorn.py: gthread workers) on a loopback port."""

    name: str
    url: str
    process: subprocess.Popen
    log_path: Path
    _log: object = field(repr=False, default=None)

    def worker_pids(self) -> list[int]:
        import psutil

        return [child.pid for child in psutil.Process(self.process.pid).children()]

    def kill_worker(self, sig: int = signal.SIGKILL) -> int:
        """Kill one worker (SIGKILL by default: no cleanup, as the OOM killer would); the master starts another."""
        pid = self.worker_pids()[0]
        os.kill(pid, sig)
        return pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()


def wait_ready(url: str, process: subprocess.Popen | None = None, timeout: float = 60, log_path: Path | None = None):
    """Poll `url` until it answers 200; fail with the server's log if the process exits or time runs out."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:] if log_path else ""
            raise RuntimeError(f"the server exited {process.returncode} before answering {url}:\n{tail}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    tail = log_path.read_text(errors="replace")[-3000:] if log_path else ""
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s:\n{tail}")


def start_gunicorn(
    env: dict[str, str],
    *,
    log_dir: Path,
    name: str = "a",
    workers: int = 2,
    threads: int = 4,
    ready_path: str = "/healthz",
    ready_timeout: float = 60,
) -> Gunicorn:
    """gunicorn -c config/gunicorn.py config.wsgi:application, as `make serve-prod` runs it, on a free port."""
    port = free_port()
    env = {
        **env,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_THREADS": str(threads),
    }
    log_path = Path(log_dir) / f"gunicorn-{name}-{port}.log"
    log = log_path.open("wb")
    command = [str(BIN / "gunicorn"), "-c", str(ROOT / "config" / "gunicorn.py"), "config.wsgi:application"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Gunicorn(name=name, url=f"http://127.0.0.1:{port}", process=process, log_path=log_path, _log=log)
    try:
        wait_ready(server.url + ready_path, process, timeout=ready_timeout, log_path=log_path)
    except BaseException:
        server.stop()
        raise
    return server


@contextmanager
def gunicorn_instances(env: dict[str, str], *, count: int = 2, log_dir: Path, **options: object):
    """`count` gunicorn instances with the same environment (one database, one Redis), as N hosts behind a proxy."""
    with ExitStack() as stack:
        servers = []
        for index in range(count):
            server = start_gunicorn(env, log_dir=log_dir, name=chr(ord("a") + index), **options)
            stack.callback(server.stop)
            servers.append(server)
        yield servers


def cpu_run_payload(speed: float) -> dict:
    """A CPU decode run of Gemma 3 270M well under the test EPYC's roofline (51.2 GB/s over ~0.25 GB of weights is
    ~200 t/s); the speed tells the runs apart."""
    return {
        "model_slug": "gemma-3-270m",
        "quant": "Q4_K_M",
        "hardware": "test-epyc",
        "runtime": "llama.cpp",
        "backend": "cpu",
        "n_gen": 128,
        "avg_ts": speed,
        "stddev_ts": 0.5,
        "n_threads": 2,
    }
