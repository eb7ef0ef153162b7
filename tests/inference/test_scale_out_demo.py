"""Issue #12 (defect 9, scale-out) and #14 item 4, for the demo: two gunicorn instances (config/gunicorn.py, 2 gthread
workers each) on one PostgreSQL database and one Redis, as two hosts behind a proxy. Stream tickets are single use
across them, a client's rate and its one run at a time hold across them, and the demo's slots are shared: a run
held by another process (as a worker on a third host would) leaves none for either instance.

No model is needed: every refusal is decided before the engine is touched, and the accepted streams end at once
with "the model failed to load" (RIGFIT_DEMO_MODEL_PATH names a file that does not exist).

Skipped where PostgreSQL or Redis does not answer; with CI=true a missing Redis fails (tests/scale_out.py).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import httpx
import pytest

from tests.scale_out import ROOT, gunicorn_instances, require_postgres_and_redis, shared_site

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("scale-out")]

RATE = 4  # demo requests per client per hour (RIGFIT_DEMO_RATE)
FORM = {"prompt": "hi", "temperature": "0", "top_p": "1", "max_new_tokens": "4"}

# Another process of the same site takes a run through the same admission code the views use, holds it until told,
# then gives it back: a generation running on another worker or host.
HOLDER = """
import sys
from inference.engine import get_engine
from inference.views import demo_gate

held = demo_gate(get_engine()).admit(sys.argv[1])
print("held", flush=True)
sys.stdin.readline()
held.release()
print("released", flush=True)
"""


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    require_postgres_and_redis()
    tmp = tmp_path_factory.mktemp("scale-out-demo")
    settings = {
        "RIGFIT_DEMO_MODEL_PATH": str(tmp / "absent.gguf"),
        "RIGFIT_DEMO_RATE": RATE,
        "RIGFIT_DEMO_RATE_WINDOW_S": 3600,
        "RIGFIT_DEMO_MAX_CONCURRENT": 1,
        "RIGFIT_DEMO_MAX_QUEUE": 0,
        "RIGFIT_DEMO_QUEUE_TIMEOUT_S": 0,
        "RIGFIT_TRUSTED_PROXIES": "127.0.0.1",  # the test speaks as several clients through X-Forwarded-For
    }
    with (
        shared_site(tmp, label="demo", redis_db=12, **settings) as site,
        gunicorn_instances(site.env, count=2, log_dir=tmp) as instances,
    ):
        yield site, instances


class Visitor:
    """One client address, with its CSRF cookie, talking to either instance."""

    def __init__(self, address: str) -> None:
        self.headers = {"X-Forwarded-For": address}
        self.http = httpx.Client(timeout=30, headers=self.headers)
        self.address = address

    def generate(self, server) -> httpx.Response:
        if "csrftoken" not in self.http.cookies:
            self.http.get(f"{server.url}/demo/")
        data = {**FORM, "csrfmiddlewaretoken": self.http.cookies["csrftoken"]}
        return self.http.post(f"{server.url}/demo/generate/", data=data)

    def stream(self, server, path: str) -> httpx.Response:
        return self.http.get(f"{server.url}{path}")


def _stream_path(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return re.search(r'sse-connect="([^"]+)"', response.text).group(1).replace("&amp;", "&")


def test_a_ticket_opens_one_stream_across_instances(servers):
    _site, (a, b) = servers
    visitor = Visitor("203.0.113.1")
    path = _stream_path(visitor.generate(a))
    first = visitor.stream(b, path)  # issued by one host, redeemed by the other
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/event-stream")
    assert first.text.rstrip().rsplit("event: ", 1)[1].startswith("done")
    for server in (a, b):
        replay = visitor.stream(server, path)
        assert replay.status_code == 410, (server.name, replay.text)
        assert "used already" in replay.text


def test_a_clients_rate_holds_across_instances(servers):
    _site, (a, b) = servers
    visitor = Visitor("203.0.113.2")
    accepted = [visitor.generate(server).status_code for server in (a, b, a, b)]
    assert accepted == [200] * RATE
    for server in (a, b):
        refused = visitor.generate(server)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 0
        assert f"the {RATE} demo requests a visitor may make in 60 minutes" in refused.text
    assert Visitor("203.0.113.3").generate(b).status_code == 200  # another client's count is its own


def _start_holder(site, client: str) -> subprocess.Popen:
    """A third process on the same site that holds one demo run for `client` until told (see HOLDER)."""
    return subprocess.Popen(
        [sys.executable, "-c", "import django\ndjango.setup()\n" + textwrap.dedent(HOLDER), client],
        cwd=ROOT,
        env=site.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_one_run_per_client_and_the_shared_slot_hold_across_instances(servers):
    site, (a, b) = servers
    holder = _start_holder(site, "203.0.113.4")
    try:
        assert holder.stdout.readline().strip() == "held", holder.stderr.read()
        same_client, other_client = Visitor("203.0.113.4"), Visitor("203.0.113.5")
        for server in (a, b):
            mine = same_client.generate(server)
            assert mine.status_code == 429 and "already have a generation running" in mine.text
            # The one slot of the whole site is taken: another client is refused too, by either host.
            theirs = other_client.generate(server)
            assert theirs.status_code == 429 and "busy" in theirs.text
            assert int(theirs.headers["Retry-After"]) > 0
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "released"
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(timeout=10)
    # The run over, the slot and the client are free on both instances.
    path = _stream_path(other_client.generate(b))
    assert other_client.stream(a, path).status_code == 200
    assert same_client.generate(a).status_code == 200


def test_a_killed_workers_run_frees_its_slot_by_expiry(servers):
    import redis

    from inference.slots import LEASE_MARGIN_S
    from inference.streaming import READY_WAIT_S

    site, (a, _b) = servers
    holder = _start_holder(site, "203.0.113.6")
    try:
        assert holder.stdout.readline().strip() == "held", holder.stderr.read()
    finally:
        holder.kill()  # SIGKILL: no release, as when the OOM killer takes a worker mid-generation
        holder.wait(timeout=10)
    client = redis.Redis.from_url(site.redis_url)
    try:
        keys = sorted(k.decode() for k in client.scan_iter(match=f"{site.key_prefix}:*demo:demo:*"))
        assert [k.rsplit(":", 2)[-2] for k in keys] == ["client", "slot"], keys
        # The lease: the model's load wait plus the wall cap (60 s by default) plus the margin, then Redis drops it.
        lease_s = READY_WAIT_S + 60 + LEASE_MARGIN_S
        ttls = [client.ttl(key) for key in keys]
        assert all(0 < ttl <= lease_s for ttl in ttls), ttls
    finally:
        client.close()
    assert Visitor("203.0.113.7").generate(a).status_code == 429  # until then the site's one slot stays taken
    for key in keys:  # what the expiry would do, now
        redis.Redis.from_url(site.redis_url).delete(key)
    assert Visitor("203.0.113.7").generate(a).status_code == 200
