"""CRI log files as `kubectl logs` options read them: --tail, --timestamps, --since, --limit-bytes, -f."""

from __future__ import annotations

import asyncio
import time

from kubelite.kubelet.server import LogOptions, parse_cri_line, render, stream_log

LOG = (b"2026-11-26T20:24:23.174764949+00:00 stdout F line-1\n"
       b"2026-11-26T20:24:24.000000001+00:00 stderr P part-\n"
       b"2026-11-26T20:24:24.000000002+00:00 stderr F ial\n"
       b"2026-11-26T20:24:25.5+00:00 stdout F line-3\n")


class Sink:
    def __init__(self):
        self.data = b""

    async def write(self, b):
        self.data += b


def test_parse_and_render():
    entries = [parse_cri_line(x) for x in LOG.splitlines(keepends=True)]
    assert entries[1] == ("2026-11-26T20:24:24.000000001+00:00", "stderr", False, b"part-")
    assert render(entries, LogOptions()) == b"line-1\npart-ial\nline-3\n"
    assert render(entries[:1], LogOptions(timestamps=True)) == b"2026-11-26T20:24:23.174764949Z line-1\n"


async def test_tail_limit_and_follow(tmp_path):
    path = tmp_path / "0.log"
    path.write_bytes(LOG)
    for tail, want in ((1, b"line-3\n"), (2, b"part-ial\nline-3\n"), (0, b"")):
        s = Sink()
        await stream_log(s, str(path), LogOptions(tail=tail), follow=False, still_running=lambda: False)
        assert s.data == want
    s = Sink()
    await stream_log(s, str(path), LogOptions(limit_bytes=8), follow=False, still_running=lambda: False)
    assert s.data == b"line-1\np"
    running = True
    s = Sink()
    task = asyncio.ensure_future(stream_log(s, str(path), LogOptions(tail=0), follow=True,
                                            still_running=lambda: running))
    await asyncio.sleep(0.15)
    with open(path, "ab") as f:
        f.write(b"2026-11-26T20:24:26.0+00:00 stdout F more\n")
    await asyncio.sleep(0.3)
    assert s.data == b"more\n"
    running = False
    t0 = time.monotonic()
    await asyncio.wait_for(task, 3)
    assert time.monotonic() - t0 < 2
