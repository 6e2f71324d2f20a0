"""Grouped: concurrent calls of one kind run together, each caller getting its own result."""

from __future__ import annotations

import asyncio

import pytest

from monitor.grouping import Grouped


def test_calls_made_while_a_group_runs_form_the_next_group_and_get_their_own_results():
    groups: list[list[int]] = []

    async def run(items: list[int]) -> list[int]:
        groups.append(items)
        await asyncio.sleep(0.01)  # the database thread at work: the next callers gather
        return [i * 10 for i in items]

    async def go() -> list[int]:
        grouped: Grouped[int, int] = Grouped(run)
        return await asyncio.gather(*(grouped(i) for i in range(5)))

    assert asyncio.run(go()) == [0, 10, 20, 30, 40]
    assert groups == [[0, 1, 2, 3, 4]]  # all five arrived before the first group started


def test_a_group_never_holds_more_items_than_its_limit():
    groups: list[list[int]] = []

    async def run(items: list[int]) -> None:
        groups.append(items)

    async def go() -> None:
        grouped: Grouped[int, None] = Grouped(run, most=2)
        assert await asyncio.gather(*(grouped(i) for i in range(5))) == [None] * 5

    asyncio.run(go())
    assert groups == [[0, 1], [2, 3], [4]]


def test_a_failed_group_fails_each_of_its_callers_and_the_next_group_still_runs():
    async def run(items: list[int]) -> list[int]:
        if 0 in items:
            raise RuntimeError("disk full")
        return items

    async def go() -> None:
        grouped: Grouped[int, int] = Grouped(run, most=2)
        results = await asyncio.gather(*(grouped(i) for i in range(3)), return_exceptions=True)
        assert [type(r) for r in results[:2]] == [RuntimeError, RuntimeError]
        assert results[2] == 2

    asyncio.run(go())


def test_a_cancelled_caller_does_not_stop_the_others():
    async def run(items: list[int]) -> list[int]:
        await asyncio.sleep(0.01)
        return items

    async def go() -> None:
        grouped: Grouped[int, int] = Grouped(run)
        first = asyncio.ensure_future(grouped(1))
        second = asyncio.ensure_future(grouped(2))
        await asyncio.sleep(0)
        first.cancel()
        assert await second == 2
        with pytest.raises(asyncio.CancelledError):
            await first

    asyncio.run(go())
