"""tests/browser.py lends Django's ORM to Playwright's event loop only for the length of a browser block (issue 14,
item 6): afterwards the ORM refuses to run inside an event loop again, so later async tests still catch a database
call made from one."""

from __future__ import annotations

import asyncio
import os

import pytest
from django.core.exceptions import SynchronousOnlyOperation

from tests.browser import ASYNC_UNSAFE, allow_async_unsafe


def test_it_sets_the_switch_inside_the_block_and_removes_it_after(monkeypatch):
    monkeypatch.delenv(ASYNC_UNSAFE, raising=False)
    with allow_async_unsafe():
        assert os.environ[ASYNC_UNSAFE] == "true"
    assert ASYNC_UNSAFE not in os.environ


def test_it_puts_back_a_value_set_before_even_when_the_block_fails(monkeypatch):
    monkeypatch.setenv(ASYNC_UNSAFE, "false")
    with pytest.raises(RuntimeError), allow_async_unsafe():
        raise RuntimeError("a browser test failed")
    assert os.environ[ASYNC_UNSAFE] == "false"


@pytest.mark.django_db
def test_after_a_browser_block_the_orm_refuses_to_run_in_an_event_loop(monkeypatch):
    from catalog.models import Model

    monkeypatch.delenv(ASYNC_UNSAFE, raising=False)
    with allow_async_unsafe():
        pass

    async def count() -> int:
        return Model.objects.count()

    with pytest.raises(SynchronousOnlyOperation):
        asyncio.run(count())
