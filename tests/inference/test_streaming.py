"""The one event stream: whatever ends a generation, the page gets a `done` event and the admission is released."""

from __future__ import annotations

import pytest

from inference.engine import GenerationParams
from inference.streaming import sync_events


class _BrokenEngine:
    state = "ready"

    def start_loading(self) -> None:
        pass

    def status_text(self) -> str:
        return "ready"

    def stream(self, params, *, cancel):
        raise RuntimeError("a bug deep in the step")
        yield  # a generator, like Engine.stream


class _Admission:
    released = 0

    def release(self) -> None:
        self.released += 1


@pytest.mark.django_db
def test_it_ends_with_a_done_event_and_releases_when_the_generation_crashes(caplog):
    admission = _Admission()
    events = list(
        sync_events(_BrokenEngine(), GenerationParams(prompt="hi"), admission=admission, extra_for=lambda m: {})
    )

    assert events[-1].startswith("event: done\n")
    assert "The generation failed; the error is in the server log." in events[-1]
    assert "a bug deep in the step" in caplog.text
    assert admission.released == 1
