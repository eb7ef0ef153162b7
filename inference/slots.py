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

import threading
import time
from dataclasses import dataclass, field


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
                raise Busy(
                    "The demo is busy: every slot and the queue are taken. Try again in a few seconds.",
                    status=429,
                    retry_after_s=10,
                )
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

    async def acquire_async(self, timeout_s: float) -> None:
        import asyncio

        if self.try_acquire():
            return
        self.enqueue()
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if self.try_acquire():
                    return
                await asyncio.sleep(self.poll_s)
        finally:
            self.dequeue()
        raise _timed_out()


def _timed_out() -> Busy:
    return Busy("The demo is busy and the wait timed out. Try again shortly.", status=503, retry_after_s=15)
