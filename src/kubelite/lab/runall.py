"""`kubelite lab run-all`: every scenario through weak → attack → defend → attack → evidence, and its attack
once more against a default `kubelite up` (which must block it), with a table or one JSON document."""

from __future__ import annotations

import io
import os
import time
from typing import IO

from . import decide
from .cluster import LabCluster
from .model import Scenario
from .runner import LabError, Runner, SkipScenario


def run_scenario(s: Scenario, root: str, lang: str, out: IO[str], *, default_check: bool = True) -> dict:
    began = time.monotonic()
    record: dict = {"id": s.id, "weak": None, "defended": None, "evidence": [], "default": None}
    cluster = LabCluster(os.path.join(root, s.id))
    runner = Runner(cluster, lang, out)
    try:
        runner.print_story(s)
        runner.start(s, "weak")
        record["weak"], _ = runner.attack(s)
        since = cluster.state.attack_started
        runner.defend(s)
        record["defended"], _ = runner.attack(s)
        # the whole loop: the weak attack, the defense, and the attempt it stopped
        record["evidence"] = runner.evidence(s, since=since)
        if default_check:
            cluster.wipe()
            runner.start(s, "default")
            record["default"], _ = runner.attack(s)
    except SkipScenario as e:
        record.update(skipped=str(e))
        print(str(e), file=out)
    except (LabError, RuntimeError, OSError) as e:
        record.update(error=str(e)[-2000:])
        print(f"error: {e}", file=out)
    finally:
        cluster.wipe()
    record["seconds"] = round(time.monotonic() - began, 1)
    record["ok"] = (record["weak"] == decide.SUCCEEDED and record["defended"] == decide.BLOCKED
                    and bool(record["evidence"])
                    and record["default"] in ((decide.SUCCEEDED if s.default_weak else decide.BLOCKED), None))
    record["default_expected"] = decide.SUCCEEDED if s.default_weak else decide.BLOCKED
    return record


def run_all(scenarios: list[Scenario], root: str, lang: str, out: IO[str] | None, *,
            default_check: bool = True) -> list[dict]:
    sink = out if out is not None else io.StringIO()
    return [run_scenario(s, root, lang, sink, default_check=default_check) for s in scenarios]


def table(records: list[dict]) -> str:
    rows = [("SCENARIO", "WEAK", "DEFENDED", "DEFAULT", "EVIDENCE", "TIME", "RESULT")]
    for r in records:
        result = "skipped" if r.get("skipped") else "error" if r.get("error") else "ok" if r["ok"] else "FAIL"
        rows.append((r["id"], str(r["weak"] or "-"), str(r["defended"] or "-"), str(r["default"] or "-"),
                     str(len(r["evidence"])), f"{r['seconds']:.1f}s", result))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    total = sum(r["seconds"] for r in records)
    lines.append(f"total {total:.1f}s, {sum(1 for r in records if r['ok'])}/{len(records)} ok")
    return "\n".join(lines)
