"""Server-sent events for the demo: one generation, as `token`, `stats` and a final `done` event.

One stream, `sync_events`, a plain generator: under WSGI (production) it is the response body, and the server's
close() on disconnect raises GeneratorExit inside it, which cancels the generation. Under ASGI `in_thread` serves the
same generator from a thread (a sync iterator would be buffered whole) and closes it there when the client leaves.
The `done` event is always the last one, also for errors, so the page's `sse-close="done"` closes the EventSource
and htmx's SSE extension does not reconnect. A busy demo never reaches this module: the view admits the run
(inference.slots.DemoGate) before the stream starts and answers 429/503 otherwise; the stream releases the admission
when it ends, however it ends (`Releasing` covers a stream closed before its first event).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from django.template.loader import render_to_string
from django.utils.html import escape

from inference.engine import DoneEvent, Engine, EngineNotReady, GenerationParams, TokenEvent
from inference.slots import Admission

logger = logging.getLogger(__name__)

READY_WAIT_S = 120.0


def sse(event: str, data: str) -> str:
    lines = data.split("\n") or [""]
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


def token_message(event: TokenEvent) -> str:
    return sse("token", escape(event.text))


def stats_message(event: TokenEvent) -> str:
    return sse("stats", f"{event.index} token{'' if event.index == 1 else 's'} · {event.tps:.1f} tok/s")


def done_message(*, metrics: dict[str, Any] | None = None, error: str = "", extra: dict[str, Any] | None = None) -> str:
    html = render_to_string("inference/_metrics.html", {"metrics": metrics, "error": error, **(extra or {})})
    return sse("done", html)


class _End:
    pass


class Releasing:
    """A sync event stream as the response body: when the server closes the response (the stream ended or the
    client left), the generator is closed, which cancels the generation, and the run's admission is released, also
    when the stream was closed before its first event (a generator that never started runs no `finally`)."""

    def __init__(self, body: Iterator[str], admission: Admission) -> None:
        self.body = body
        self.admission = admission

    def __iter__(self) -> Iterator[str]:
        return self.body

    def close(self) -> None:
        try:
            self.body.close()  # type: ignore[attr-defined]
        finally:
            self.admission.release()


class AsyncReleasing:
    """The ASGI twin: the generation thread releases the admission when it ends; if the stream never started it,
    the response's close() does."""

    def __init__(self, body: AsyncIterator[str], admission: Admission) -> None:
        self.body = body
        self.admission = admission
        self.started = False

    def __aiter__(self) -> AsyncIterator[str]:
        self.started = True
        return self.body.__aiter__()

    def close(self) -> None:
        if not self.started:
            self.admission.release()


def releasing(body: Iterator[str] | AsyncIterator[str], admission: Admission) -> Releasing | AsyncReleasing:
    if isinstance(body, AsyncIterator):
        return AsyncReleasing(body, admission)
    return Releasing(body, admission)


async def in_thread(events: Iterator[str]) -> AsyncIterator[str]:
    """The one event stream served to ASGI: Django would buffer a sync iterator whole (shared/FACTS.md), so it is
    iterated in its own thread and handed over through an asyncio queue. When the client goes away the server cancels
    this task; the thread then stops at the next event and closes the stream there, which cancels the generation and
    releases its admission exactly as under WSGI."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    stop = threading.Event()

    def hand_over(item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: the client left and nobody listens
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def pump() -> None:
        try:
            for chunk in events:
                hand_over(chunk)
                if stop.is_set():
                    break
        finally:
            events.close()  # type: ignore[attr-defined]
            hand_over(_End)

    threading.Thread(target=pump, daemon=True, name="rigfit-stream").start()
    try:
        while (item := await queue.get()) is not _End:
            yield item
    finally:
        stop.set()


def sync_events(
    engine: Engine,
    params: GenerationParams,
    *,
    admission: Admission,
    extra_for: Callable[[dict[str, Any]], dict[str, Any]],
) -> Iterator[str]:
    """Events of one admitted run, generated in the serving thread; the admission is released when it ends."""
    import time

    cancel = threading.Event()
    try:
        yield sse("status", "Waiting for the model…" if engine.state != "ready" else "Generating…")
        engine.start_loading()
        deadline = time.monotonic() + READY_WAIT_S
        while engine.state not in ("ready", "failed") and time.monotonic() < deadline:
            time.sleep(0.2)
        if engine.state != "ready":
            yield done_message(error=engine.status_text())
            return
        try:
            for event in engine.stream(params, cancel=cancel):
                if isinstance(event, TokenEvent):
                    yield token_message(event) + stats_message(event)
                elif isinstance(event, DoneEvent):
                    metrics = event.metrics.as_dict()
                    yield done_message(metrics=metrics, extra=extra_for(metrics))
        except (ValueError, EngineNotReady) as exc:
            yield done_message(error=str(exc))
        except Exception:  # the page still gets its done event, so the EventSource closes instead of reconnecting
            logger.exception("generation failed")
            yield done_message(error="The generation failed; the error is in the server log.")
    finally:  # GeneratorExit on client disconnect lands here too
        cancel.set()
        admission.release()


def json_line(data: dict[str, Any]) -> str:
    return json.dumps(data)
