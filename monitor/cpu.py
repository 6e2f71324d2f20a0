"""The extractor process pool, fed in pipeline order and a few calls at a time.

A ProcessPoolExecutor runs jobs in the order they were submitted. A cold cycle submitted a
thousand feeds' parse jobs before the first feed's extraction, so no feed reached the store
until every feed was parsed, and the database thread idled until then. CpuPool keeps only a
few jobs in the executor and hands each free place to the most urgent waiting call: the one of
the latest pipeline stage, so a feed that is further along finishes first.

When calls wait, up to CALLS_PER_JOB of them go to a worker as one job: each job costs the
submitting process a round trip (pickling, a pipe write, a wake-up, unpickling), which with
two workers on two cores competed with the workers for CPU.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any, TypeVar

T = TypeVar("T")

CALLS_PER_JOB = 4  # more made the last jobs of a burst uneven between the workers
JOBS_PER_WORKER = 2  # one running, one ready, so a worker never waits for the next job

Call = tuple[Callable[..., Any], tuple[Any, ...]]


class CpuPool:
    """`await pool.run(priority, fn, *args)`: fn(*args) in the executor, lowest priority first."""

    def __init__(self, executor: Executor, workers: int) -> None:
        self.executor = executor
        self.depth = JOBS_PER_WORKER * workers  # jobs in the executor at most
        self.running = 0
        self.waiting: list[tuple[int, int, Call, asyncio.Future[Any]]] = []
        self._order = itertools.count()  # equal priority: first come, first served

    async def run(self, priority: int, fn: Callable[..., T], *args: Any) -> T:
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        heapq.heappush(self.waiting, (priority, next(self._order), (fn, args), done))
        self._dispatch()
        return await done

    def _dispatch(self) -> None:
        while self.running < self.depth and self.waiting:
            calls: list[Call] = []
            futures: list[asyncio.Future[Any]] = []
            while self.waiting and len(calls) < CALLS_PER_JOB:
                *_, call, done = heapq.heappop(self.waiting)
                if not done.done():  # a cancelled caller's call is dropped
                    calls.append(call)
                    futures.append(done)
            if not calls:
                return
            try:
                job = asyncio.get_running_loop().run_in_executor(self.executor, run_calls, calls)
            except Exception as err:  # the pool was shut down: nobody may wait forever
                for done in futures:
                    done.set_exception(err)
                continue
            self.running += 1
            job.add_done_callback(functools.partial(self._finished, futures=futures))

    def _finished(
        self, job: asyncio.Future[list[tuple[bool, Any]]], futures: list[asyncio.Future[Any]]
    ) -> None:
        self.running -= 1
        if job.cancelled() or job.exception() is not None:  # the pool broke or shut down
            error = job.exception() if not job.cancelled() else asyncio.CancelledError()
            outcomes: Sequence[tuple[bool, Any]] = [(False, error)] * len(futures)
        else:
            outcomes = job.result()
        for done, (ok, value) in zip(futures, outcomes, strict=True):
            if done.done():
                continue
            if ok:
                done.set_result(value)
            else:
                done.set_exception(value)
        self._dispatch()


def run_calls(calls: Sequence[Call]) -> list[tuple[bool, Any]]:
    """A pool job: each call's (True, result) or (False, exception), in order."""
    outcomes: list[tuple[bool, Any]] = []
    for fn, args in calls:
        try:
            outcomes.append((True, fn(*args)))
        except Exception as err:  # one call's failure is its own caller's, not the others'
            outcomes.append((False, err))
    return outcomes
