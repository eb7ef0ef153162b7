"""Who may generate, and when: the per-process slots and the demo's limits shared across workers and hosts.

`Slots` bounds the generations one process runs at once and how many requests of that process may wait.

`DemoGate` holds what must be shared when several gunicorn workers or hosts serve the demo, kept in the "limits"
cache (Redis when RIGFIT_REDIS_URL is set, else a per-process memory cache):
- stream tickets are single use: redeeming one adds its nonce to the store, and a second redemption finds it there;
- each client (address) gets RIGFIT_DEMO_RATE requests per RIGFIT_DEMO_RATE_WINDOW_S and one generation at a time;
- at most RIGFIT_DEMO_MAX_CONCURRENT generations run across every process sharing the store: one lease key per
  slot, taken with an atomic add and given back with a delete, each with an expiry so a killed worker's slot frees
  itself.
With Redis unreachable, generation fails closed: `Busy` with status 503 and a message saying why.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.cache import caches
from django.template.defaultfilters import pluralize
from redis.exceptions import RedisError

from config.clients import client_ip as client_address  # noqa: F401  (the demo's views import it from here)

log = logging.getLogger(__name__)

STORE_ERRORS = (RedisError, OSError)


class Busy(Exception):
    """No slot free and the queue is full (429) or the wait timed out (503)."""

    def __init__(self, message: str, *, status: int, retry_after_s: int) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


@dataclass
class Slots:
    """At most `limit` holders and `max_queue` waiters; waits poll, so a cancelled waiter leaves nothing behind."""

    limit: int
    max_queue: int
    poll_s: float = 0.02
    _lock: threading.Lock = field(default_factory=threading.Lock)
    running: int = 0
    waiting: int = 0

    def try_acquire(self) -> bool:
        with self._lock:
            if self.running < self.limit:
                self.running += 1
                return True
            return False

    def enqueue(self) -> None:
        """Register a waiter or refuse with 429 when the queue is full."""
        with self._lock:
            if self.waiting >= self.max_queue:
                raise _queue_full()
            self.waiting += 1

    def dequeue(self) -> None:
        with self._lock:
            self.waiting -= 1

    def release(self) -> None:
        with self._lock:
            self.running = max(0, self.running - 1)

    def acquire(self, timeout_s: float) -> None:
        """Blocking acquire for sync callers."""
        if self.try_acquire():
            return
        self.enqueue()
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if self.try_acquire():
                    return
                time.sleep(self.poll_s)
        finally:
            self.dequeue()
        raise _timed_out()


def _timed_out() -> Busy:
    return Busy("The demo is busy and the wait timed out. Try again shortly.", status=503, retry_after_s=15)


# --- limits shared across processes -------------------------------------------------------------------------------

SIGNING_SALT = "inference.stream"
TICKET_MAX_AGE_S = 300
LEASE_MARGIN_S = 30  # a lease outlives the longest run by this much; a killed worker's slot frees after it
STORE_DOWN_RETRY_S = 30


class TicketRefused(Exception):
    """A stream ticket that is forged or expired (400) or was used already (410)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


def limits_store() -> Any:
    """The "limits" cache: Redis with RIGFIT_REDIS_URL (raises when Redis is unreachable), else per process."""
    return caches["limits"] if "limits" in settings.CACHES else caches["default"]


def store_unreachable() -> Busy:
    return Busy(
        "The demo is paused: the store that keeps its limits is unreachable. Please retry shortly.",
        status=503,
        retry_after_s=STORE_DOWN_RETRY_S,
    )


def issue_ticket(data: dict[str, Any]) -> str:
    """A signed stream ticket for one run of these settings; `redeem_ticket` accepts it once."""
    return signing.dumps({"run": data, "nonce": secrets.token_urlsafe(16)}, salt=SIGNING_SALT)


def redeem_ticket(ticket: str) -> dict[str, Any]:
    """The settings a ticket carries, the first time it is shown; TicketRefused after that (in any process sharing
    the store), Busy(503) when the store is unreachable."""
    try:
        signed = signing.loads(ticket, salt=SIGNING_SALT, max_age=TICKET_MAX_AGE_S)
        data, nonce = signed["run"], str(signed["nonce"])
    except (signing.BadSignature, TypeError, KeyError):
        raise TicketRefused("This run link is invalid or has expired; start a new run.", status=400) from None
    try:
        first = limits_store().add(f"demo:ticket:{nonce}", 1, timeout=TICKET_MAX_AGE_S + 1)
    except STORE_ERRORS as exc:
        log.error("Demo limit store unreachable; refusing runs: %s", exc)
        raise store_unreachable() from exc
    if not first:
        raise TicketRefused("This run link has been used already; start a new run.", status=410)
    return data


@dataclass
class Admission:
    """One admitted generation: a per-client hold, a shared slot lease and this process's slot, released once."""

    gate: DemoGate
    client_key: str
    owner: str
    slot_key: str
    _released: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        self.gate._give_back(self)


class DemoGate:
    """The demo's admission: per-client rate and single run, shared concurrency, this process's queue.

    `scope` keeps the text demo and the vision endpoint apart (each client may run one of each at once; both count
    against the same rate). Keys live in the limits store with expiries, so nothing outlives a killed worker by more
    than the longest run plus LEASE_MARGIN_S.
    """

    def __init__(
        self,
        *,
        slots: Slots,
        rate: int,
        rate_window_s: int,
        lease_s: float,
        queue_timeout_s: float,
        scope: str = "demo",
        poll_s: float = 0.05,
    ) -> None:
        self.slots = slots
        self.rate = rate
        self.rate_window_s = rate_window_s
        self.lease_s = int(lease_s) + LEASE_MARGIN_S
        self.queue_timeout_s = queue_timeout_s
        self.scope = scope
        self.poll_s = poll_s

    # -- per-client request rate ------------------------------------------------------------------------------
    def charge(self, client: str, *, now: float | None = None) -> None:
        """Count one request of `client`; Busy(429) past the rate (the refused request is not counted)."""
        now = time.time() if now is None else now
        window = int(now // self.rate_window_s)
        key = f"demo:rate:{_digest(client)}:{window}"
        store = limits_store()
        try:
            store.add(key, 0, timeout=self.rate_window_s + 1)
            try:
                count = store.incr(key)
            except ValueError:  # expired between add and incr
                store.set(key, 1, timeout=self.rate_window_s + 1)
                count = 1
            if count <= self.rate:
                return
            store.decr(key)
        except STORE_ERRORS as exc:
            log.error("Demo limit store unreachable; refusing runs: %s", exc)
            raise store_unreachable() from exc
        retry = max(1, math.ceil((window + 1) * self.rate_window_s - now))
        minutes = self.rate_window_s / 60
        span = f"{minutes:g} minute{pluralize(minutes)}" if minutes >= 1 else f"{self.rate_window_s} s"
        raise Busy(
            f"You have used the {self.rate} demo request{pluralize(self.rate)} a visitor may make in {span}. "
            f"Try again in {retry} s.",
            status=429,
            retry_after_s=retry,
        )

    def check_and_charge(self, client: str) -> None:
        """Raise the refusal an admission would meet now, else count the request against the client's rate."""
        refusal = self.would_refuse(client)
        if refusal is not None:
            raise refusal
        self.charge(client)

    def enter(self, client: str, *, wait_s: float | None = None) -> Admission:
        """One run for `client` at once: refused early when it would be, charged, then admitted (see `admit`)."""
        self.check_and_charge(client)
        return self.admit(client, wait_s=wait_s)

    # -- what the page can tell before a stream opens ---------------------------------------------------------
    def would_refuse(self, client: str) -> Busy | None:
        """The refusal an admission would meet right now, without taking anything (the page's first answer)."""
        try:
            store = limits_store()
            if store.get(self._client_key(client)) is not None:
                return _already_running()
            shared_full = all(store.get(self._slot_key(i)) is not None for i in range(self.slots.limit))
        except STORE_ERRORS as exc:
            log.error("Demo limit store unreachable; refusing runs: %s", exc)
            return store_unreachable()
        slots = self.slots
        if slots.waiting >= slots.max_queue and (slots.running >= slots.limit or shared_full):
            return _queue_full()
        return None

    # -- admission ---------------------------------------------------------------------------------------------
    def admit(self, client: str, *, wait_s: float | None = None) -> Admission:
        """Hold `client`'s one run, then wait (up to `wait_s`, default queue_timeout_s, in this process's bounded
        queue) for this process's slot and a shared one. Busy(429) when the client already runs one or the queue is
        full, Busy(503) when the wait times out or the store is unreachable."""
        owner = secrets.token_hex(8)
        client_key = self._client_key(client)
        store = limits_store()
        try:
            if not store.add(client_key, owner, timeout=self.lease_s):
                raise _already_running()
        except STORE_ERRORS as exc:
            log.error("Demo limit store unreachable; refusing runs: %s", exc)
            raise store_unreachable() from exc
        try:
            slot_key = self._wait_for_slots(owner, self.queue_timeout_s if wait_s is None else wait_s)
        except BaseException:
            self._delete_owned(client_key, owner)
            raise
        return Admission(gate=self, client_key=client_key, owner=owner, slot_key=slot_key)

    def _wait_for_slots(self, owner: str, wait_s: float) -> str:
        deadline = time.monotonic() + wait_s
        queued = False
        try:
            while True:
                if self.slots.try_acquire():
                    try:
                        slot_key = self._take_shared(owner)
                    except BaseException:
                        self.slots.release()
                        raise
                    if slot_key is not None:
                        return slot_key
                    self.slots.release()
                if not queued:
                    self.slots.enqueue()  # Busy(429) when this process's queue is full
                    queued = True
                if time.monotonic() >= deadline:
                    raise _timed_out()
                time.sleep(self.poll_s)
        finally:
            if queued:
                self.slots.dequeue()

    def _take_shared(self, owner: str) -> str | None:
        store = limits_store()
        try:
            for index in range(self.slots.limit):
                key = self._slot_key(index)
                if store.add(key, owner, timeout=self.lease_s):
                    return key
        except STORE_ERRORS as exc:
            log.error("Demo limit store unreachable; refusing runs: %s", exc)
            raise store_unreachable() from exc
        return None

    def _give_back(self, admission: Admission) -> None:
        self.slots.release()
        self._delete_owned(admission.slot_key, admission.owner)
        self._delete_owned(admission.client_key, admission.owner)

    def _delete_owned(self, key: str, owner: str) -> None:
        """Delete `key` if this admission still holds it (its lease may have expired and passed to another)."""
        try:
            store = limits_store()
            if store.get(key) == owner:
                store.delete(key)
        except STORE_ERRORS as exc:  # the lease expires by itself
            log.warning("Demo limit store unreachable while releasing %s: %s", key, exc)

    def _client_key(self, client: str) -> str:
        return f"demo:{self.scope}:client:{_digest(client)}"

    def _slot_key(self, index: int) -> str:
        # The shared slots are the text demo's own: vision (another model) has only per-client limits.
        return f"demo:{self.scope}:slot:{index}"


def _digest(client: str) -> str:
    return hashlib.sha256(client.encode()).hexdigest()[:32]


def _already_running() -> Busy:
    return Busy(
        "You already have a generation running; wait for it to finish (or stop it) before starting another.",
        status=429,
        retry_after_s=5,
    )


def _queue_full() -> Busy:
    return Busy(
        "The demo is busy: every slot and the queue are taken. Try again in a few seconds.",
        status=429,
        retry_after_s=10,
    )
