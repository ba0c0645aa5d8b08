"""kubelite.heap: freed malloc memory goes back to the system."""

from __future__ import annotations

import asyncio
import os

import pytest

from kubelite import heap


def _rss_anon_kb() -> int:
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


@pytest.mark.skipif(heap._malloc_trim() is None, reason="no glibc malloc_trim here")
def test_trim_returns_freed_memory():
    # malloc'd (not pymalloc) blocks with survivors in between: freeing the rest leaves holes malloc keeps
    blocks = [bytes(2000 + i % 3000) for i in range(60_000)]
    keep = blocks[::8]
    del blocks
    heap.trim()  # whatever was free before
    blocks = [bytes(2000 + i % 3000) for i in range(60_000)]
    keep2 = blocks[::8]
    del blocks
    before = _rss_anon_kb()
    heap.trim()
    after = _rss_anon_kb()
    assert before - after > 50_000, (before, after)  # ~130 MB were freed; most goes back
    assert keep and keep2


async def test_trim_periodically_runs_until_cancelled(monkeypatch):
    calls = []
    monkeypatch.setattr(heap, "trim", lambda: calls.append(1) or True)
    task = asyncio.create_task(heap.trim_periodically(0.01))
    for _ in range(200):
        if len(calls) >= 2:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(calls) >= 2 or heap._malloc_trim() is None
