"""CpuPool: the extractor pool fed in pipeline order, several waiting calls to one job."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

from monitor.cpu import CpuPool
from monitor.extract import content_hash


def test_a_waiting_call_of_a_later_stage_runs_before_earlier_waiting_ones():
    ran: list[str] = []
    gate = threading.Event()

    def call(name: str) -> str:
        if name.startswith("busy"):
            gate.wait(5)
        ran.append(name)
        return name

    async def go() -> list[str]:
        with ThreadPoolExecutor(1) as executor:
            pool = CpuPool(executor, workers=1)  # two jobs in the executor at most
            busy = [asyncio.ensure_future(pool.run(0, call, f"busy{i}")) for i in range(2)]
            await asyncio.sleep(0)
            waiting = [
                asyncio.ensure_future(pool.run(priority, call, name))
                for priority, name in ((-1, "parse a"), (-1, "parse b"), (-2, "extract a"))
            ]
            await asyncio.sleep(0)
            gate.set()
            return await asyncio.gather(*busy, *waiting)

    assert asyncio.run(go()) == ["busy0", "busy1", "parse a", "parse b", "extract a"]
    assert ran == ["busy0", "busy1", "extract a", "parse a", "parse b"]


def test_one_calls_exception_reaches_only_its_caller():
    def call(n: int) -> int:
        if n == 2:
            raise ValueError("bad page")
        return n

    async def go() -> list[object]:
        with ThreadPoolExecutor(1) as executor:
            pool = CpuPool(executor, workers=1)
            calls = [pool.run(0, call, n) for n in range(5)]
            return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(go())
    assert [r for i, r in enumerate(results) if i != 2] == [0, 1, 3, 4]
    assert isinstance(results[2], ValueError)


def test_calls_in_worker_processes_give_what_they_give_inline():
    texts = [f"Text number {i}, with “quotes”." for i in range(20)]

    async def go() -> list[str]:
        with ProcessPoolExecutor(2) as executor:
            pool = CpuPool(executor, workers=2)
            return await asyncio.gather(*(pool.run(0, content_hash, t) for t in texts))

    assert asyncio.run(go()) == [content_hash(t) for t in texts]


def test_a_broken_pool_fails_the_waiting_calls_instead_of_hanging_them():
    async def go() -> None:
        executor = ThreadPoolExecutor(1)
        executor.shutdown()
        pool = CpuPool(executor, workers=1)
        calls = [pool.run(0, content_hash, str(i)) for i in range(6)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)

    asyncio.run(go())
