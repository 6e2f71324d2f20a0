"""Group calls of one kind from many concurrent feeds into one call on the database thread.

A database call costs more than its SQL: a transaction, a connection check, and for the
database thread the interpreter lock, won back after every statement against an event loop
and a pool that want it too. A cold cycle of a thousand feeds made about forty statements a
feed. While one group runs, the next gathers: a lone feed waits for nothing, and under load a
cycle costs a call per group instead of a call per feed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741 (an item, as in typing's own examples)
R = TypeVar("R")


class Grouped(Generic[I, R]):
    """`await grouped(item)` runs `run(items)` for the items gathered meanwhile, and returns
    this item's result (run returns one per item, in order, or None for "None each").

    When run fails every caller of that group gets its exception; run decides itself whether a
    group that failed is tried again item by item."""

    def __init__(
        self, run: Callable[[list[I]], Awaitable[Sequence[R] | None]], most: int = 1000
    ) -> None:
        self.run = run
        self.most = most  # items in one group at most: bounds a transaction's length
        self.waiting: list[tuple[I, asyncio.Future[R]]] = []
        self.running: asyncio.Task[None] | None = None

    async def __call__(self, item: I) -> R:
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self.waiting.append((item, done))
        if self.running is None:
            self.running = asyncio.create_task(self._drain())
        return await done

    async def _drain(self) -> None:
        group: list[tuple[I, asyncio.Future[R]]] = []
        try:
            while self.waiting:
                group, self.waiting = self.waiting[: self.most], self.waiting[self.most :]
                try:
                    results = await self.run([item for item, _ in group])
                except Exception as err:
                    _settle(group, error=err)
                else:
                    _settle(group, results)
        except asyncio.CancelledError:  # shutting down: nobody may wait forever
            _settle(group + self.waiting, error=asyncio.CancelledError())
            self.waiting = []
            raise
        finally:
            self.running = None


def _settle(
    group: Sequence[tuple[object, asyncio.Future[R]]],
    results: Sequence[R] | None = None,
    error: BaseException | None = None,
) -> None:
    for i, (_, done) in enumerate(group):
        if done.done():  # its caller was cancelled
            continue
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(None if results is None else results[i])  # type: ignore[arg-type]
