"""`kubelite lab …`: the attack-and-defense lab (issue 15).

    kubelite lab list | start ID | attack ID | defend ID | evidence ID | reset [ID] | run-all [-o json] | check
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from .cluster import LabCluster, default_lab_dir
from .i18n import default_lang, msg


def _scenarios(args: argparse.Namespace):
    from .model import ScenarioError, find, load_all

    try:
        return find(args.scenario) if getattr(args, "scenario", None) else load_all()
    except ScenarioError as e:
        raise SystemExit(f"kubelite lab: error: {e}") from None


def _list(args: argparse.Namespace) -> int:
    from .model import text

    cluster = LabCluster(args.data_dir)
    rows = [("ID", "TECHNIQUE", "DIFFICULTY", "CONTAINERS", "STATE", "TITLE")]
    for s in _scenarios(args):
        state = "-"
        if cluster.state.scenario == s.id and cluster.running():
            state = msg(f"state_{cluster.state.mode}", args.lang)
        rows.append((s.id, s.technique["id"], s.difficulty, "yes" if s.needs_containers else "no", state,
                     text(s.title, args.lang)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5])
    return 0


def _runner(args: argparse.Namespace):
    from .runner import Runner

    return Runner(LabCluster(args.data_dir), args.lang)


def _require_running(runner, s) -> bool:
    c = runner.cluster
    if c.state.scenario != s.id or not c.running():
        print(msg("not_running", runner.lang, id=s.id), file=sys.stderr)
        return False
    return True


def _start(args: argparse.Namespace) -> int:
    from .runner import LabError, SkipScenario

    s, runner = _scenarios(args), _runner(args)
    runner.print_story(s)
    try:
        runner.start(s, "default" if args.default else "weak")
    except SkipScenario as e:
        print(e, file=sys.stderr)
        return 3
    except (LabError, RuntimeError) as e:
        print(f"kubelite lab: error: {e}", file=sys.stderr)
        return 1
    print(msg("next", args.lang, id=s.id))
    return 0


def _attack(args: argparse.Namespace) -> int:
    s, runner = _scenarios(args), _runner(args)
    if not _require_running(runner, s):
        return 1
    verdict, _ = runner.attack(s)
    return {"succeeded": 0, "blocked": 0}.get(verdict, 2)


def _defend(args: argparse.Namespace) -> int:
    from .runner import LabError

    s, runner = _scenarios(args), _runner(args)
    if not _require_running(runner, s):
        return 1
    try:
        runner.defend(s)
    except (LabError, RuntimeError) as e:
        print(f"kubelite lab: error: {e}", file=sys.stderr)
        return 1
    return 0


def _evidence(args: argparse.Namespace) -> int:
    s, runner = _scenarios(args), _runner(args)
    if runner.cluster.state.scenario != s.id:
        print(msg("not_running", args.lang, id=s.id), file=sys.stderr)
        return 1
    found = runner.evidence(s, since="" if args.all else None)
    return 0 if found else 1


def _reset(args: argparse.Namespace) -> int:
    LabCluster(args.data_dir).wipe()
    print(msg("reset_done", args.lang))
    return 0


def _run_all(args: argparse.Namespace) -> int:
    from .model import find, load_all
    from .runall import run_all, table

    # a stopped run (Ctrl-C, SIGTERM from a timeout) must still stop the scenario's cluster and its containers:
    # SystemExit unwinds through run_scenario's clean-up as KeyboardInterrupt does
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    scenarios = [find(i) for i in args.only.split(",")] if args.only else load_all()
    root = os.path.join(os.path.abspath(os.path.expanduser(args.data_dir)), "run-all")
    out = sys.stderr if args.output == "json" else sys.stdout
    records = run_all(scenarios, root, args.lang, out if not args.quiet else None,
                      default_check=not args.no_default_check)
    if args.output == "json":
        json.dump(records, sys.stdout, indent=1, ensure_ascii=False)
        print()
    else:
        print(table(records))
    return 0 if all(r["ok"] or r.get("skipped") for r in records) else 1


def _check(args: argparse.Namespace) -> int:
    from .check import print_table, run_checks

    kubeconfig, data_dir = args.kubeconfig, None
    if not kubeconfig:
        given = os.path.abspath(os.path.expanduser(args.data_dir))
        # a `kubelite up` data dir, or the lab's (whose cluster lives in cluster/)
        data_dir = given if os.path.exists(os.path.join(given, "admin.kubeconfig")) else LabCluster(given).data_dir
    results = run_checks(kubeconfig=kubeconfig, data_dir=data_dir, lang=args.lang)
    if args.output == "json":
        json.dump(results, sys.stdout, indent=1, ensure_ascii=False)
        print()
    else:
        print_table(results)
    return 0 if all(r["status"] != "FAIL" for r in results) else 1


def add_lab_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `lab` and its sub-commands; each sets `func`."""
    p = sub.add_parser("lab", help="attack-and-defense lab: weaken a cluster, attack it, defend it",
                       description="Run classic Kubernetes attacks for real against a lab cluster, then the "
                                   "defense that stops each, with the audit-log evidence.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default=default_lab_dir(),
                        help="where the lab's cluster lives (default: %(default)s)")
    common.add_argument("--lang", default=default_lang(), choices=("en", "zh"),
                        help="language of stories and explanations (default: from the locale)")
    lsub = p.add_subparsers(dest="lab_command", metavar="COMMAND", required=True)
    lsub.add_parser("list", parents=[common], help="list the scenarios").set_defaults(func=_list)
    for name, func, text_ in (("start", _start, "start a cluster in the scenario's weak configuration"),
                              ("attack", _attack, "run the attack for real"),
                              ("defend", _defend, "apply the scenario's defense"),
                              ("evidence", _evidence, "show the audit-log lines and Events of the attack")):
        sp = lsub.add_parser(name, parents=[common], help=text_)
        sp.add_argument("scenario")
        sp.set_defaults(func=func)
        if name == "start":
            sp.add_argument("--default", action="store_true",
                            help="start a default `kubelite up` with the scenario's workloads but nothing weakened")
        if name == "evidence":
            sp.add_argument("--all", action="store_true", help="from the cluster's start, not the last attack")
    rs = lsub.add_parser("reset", parents=[common], help="stop the lab cluster and remove its data")
    rs.add_argument("scenario", nargs="?")
    rs.set_defaults(func=_reset)
    ra = lsub.add_parser("run-all", parents=[common], help="every scenario: weak, attack, defend, attack, evidence")
    ra.add_argument("-o", "--output", choices=("table", "json"), default="table")
    ra.add_argument("--only", default="", metavar="IDS", help="comma-separated scenario ids")
    ra.add_argument("--no-default-check", action="store_true",
                    help="skip the attack against a default `kubelite up`")
    ra.add_argument("-q", "--quiet", action="store_true", help="print only the result")
    ra.set_defaults(func=_run_all)
    ck = lsub.add_parser("check", parents=[common], help="CIS-benchmark scorecard of a running cluster")
    ck.add_argument("--kubeconfig", default=None, help="the cluster to audit (admin credentials)")
    ck.add_argument("-o", "--output", choices=("table", "json"), default="table")
    ck.set_defaults(func=_check)
    return p
