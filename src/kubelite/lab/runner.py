"""Running a scenario against the lab cluster: set it up weak, attack it step by step for real, defend it,
and read the evidence back from the audit log."""

from __future__ import annotations

import base64
import datetime as dt
import difflib
import json
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import IO, Any

import yaml

from . import decide
from .cluster import NODE_NAME, LabCluster, kubectl_binary, real_containers_possible
from .i18n import msg
from .image import IMAGE
from .model import Scenario, Step, text

MAX_LINES = 14


class LabError(Exception):
    pass


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _mask(s: str) -> str:
    """Tokens and keys are shortened in what the lab prints (the real value is used)."""
    return re.sub(r"(eyJ[A-Za-z0-9_-]{6})[A-Za-z0-9_.-]{20,}", r"\1…", s)


def _clip(output: str, lines: int = MAX_LINES) -> str:
    rows = output.rstrip("\n").splitlines()
    rows = [r if len(r) <= 220 else r[:220] + "…" for r in rows]
    if len(rows) > lines:
        rows = rows[:lines] + [f"… ({len(rows) - lines} more lines)"]
    return "\n".join(rows)


class Runner:
    def __init__(self, cluster: LabCluster, lang: str = "en", out: IO[str] | None = None) -> None:
        self.cluster = cluster
        self.lang = lang
        self.out = out or sys.stdout
        self.vars: dict[str, str] = {}
        self._kubeconfigs: dict[str, str] = {}

    def say(self, line: str = "") -> None:
        print(line, file=self.out, flush=True)

    # -- variables and identities -------------------------------------------------------------------------

    def base_vars(self) -> dict[str, str]:
        c = self.cluster
        return {"server": c.url, "port": str(c.state.port), "kubelet_port": str(c.state.kubelet_port),
                "read_only_port": str(c.state.read_only_port), "data_dir": c.data_dir, "node": NODE_NAME,
                "lab_dir": c.lab_dir, "image": IMAGE, "kubectl": kubectl_binary()}

    def _ca_pem(self) -> bytes:
        with open(self.cluster.kubeconfig) as f:
            doc = yaml.safe_load(f)
        return base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"])

    def kubeconfig_for(self, identity: str) -> str | None:
        """A kubeconfig file for `identity` (admin, anonymous, token:VAR, sa:NS/NAME, cert:CN[/O1,O2])."""
        if identity in ("", "admin"):
            return self.cluster.kubeconfig
        if identity in self._kubeconfigs:
            return self._kubeconfigs[identity]
        from ..pki.kubeconfig import write_kubeconfig

        ids = os.path.join(self.cluster.lab_dir, "ids")
        os.makedirs(ids, mode=0o700, exist_ok=True)
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", identity)
        path = os.path.join(ids, slug + ".kubeconfig")
        kind, _, rest = identity.partition(":")
        if kind == "anonymous":
            write_kubeconfig(path, server=self.cluster.url, ca_pem=self._ca_pem(), user="anonymous",
                             context="anonymous@kubelite")
        elif kind in ("token", "sa"):
            write_kubeconfig(path, server=self.cluster.url, ca_pem=self._ca_pem(), token=self.token_for(identity),
                             user=slug, context=f"{slug}@kubelite")
        elif kind == "cert":
            from ..pki.components import write_component_kubeconfig

            cn, _, orgs = rest.partition("/")
            # issued by the cluster's own CA, as the credentials found on a compromised machine would be
            path = write_component_kubeconfig(self.cluster.data_dir, f"lab-{slug}", cn,
                                              [o for o in orgs.split(",") if o], server=self.cluster.url)
        else:
            raise LabError(f"unknown identity {identity!r}")
        self._kubeconfigs[identity] = path
        return path

    def token_for(self, identity: str) -> str | None:
        kind, _, rest = identity.partition(":")
        if kind == "anonymous":
            return None
        if kind == "token":
            if rest not in self.vars:
                raise LabError(f"no variable {rest!r} saved by an earlier step")
            return self.vars[rest]
        if kind == "sa":
            ns, _, name = rest.partition("/")
            r = self.cluster.kubectl("create", "token", name, "-n", ns, "--duration=1h")
            if r.returncode != 0:
                raise LabError(f"cannot get a token for {identity}: {r.stderr.strip()}")
            return r.stdout.strip()
        raise LabError(f"identity {identity!r} has no bearer token")

    # -- steps --------------------------------------------------------------------------------------------

    def run_step(self, run: dict[str, Any]) -> tuple[str, decide.Result]:
        """(the command as a learner would type it, its real result)."""
        run = decide.substitute(run, {**self.base_vars(), **self.vars})
        kind = run["kind"]
        if kind == "kubectl":
            identity = run.get("as", "admin")
            kubeconfig = self.kubeconfig_for(identity)
            shown = "kubectl " + " ".join(_quote(a) for a in run["args"])
            if identity not in ("", "admin"):
                shown = f"kubectl --kubeconfig <{identity}> " + " ".join(_quote(a) for a in run["args"])
            stdin = run.get("stdin")
            if stdin:
                shown += " <<EOF\n" + _clip(stdin, 8) + "\nEOF"
            r = self.cluster.kubectl(*run["args"], kubeconfig=kubeconfig, input=stdin,
                                     timeout=float(run.get("timeout", 60)))
            return shown, decide.Result(output=(r.stdout + r.stderr), exit=r.returncode)
        if kind == "http":
            return self._http(run)
        if kind == "host":
            args = list(run["args"])
            if run.get("user"):
                args = ["setpriv", f"--reuid={run['user']}", f"--regid={run['user']}", "--clear-groups", *args]
            shown = " ".join(_quote(a) for a in args)
            try:
                r = subprocess.run(args, capture_output=True, text=True, timeout=float(run.get("timeout", 60)),
                                   input=run.get("stdin"), errors="replace")
            except FileNotFoundError as e:
                return shown, decide.Result(output=str(e), exit=127)
            except subprocess.TimeoutExpired:
                return shown, decide.Result(output="(timed out)", exit=124)
            return shown, decide.Result(output=r.stdout + r.stderr, exit=r.returncode)
        raise LabError(f"unknown step kind {kind!r}")

    def _http(self, run: dict[str, Any]) -> tuple[str, decide.Result]:
        url = run.get("url") or self.cluster.url + run["path"]
        method = run.get("method", "GET")
        headers = dict(run.get("headers") or {})
        identity = run.get("as", "anonymous")
        if identity != "anonymous":
            token = self.token_for(identity)
            if token:
                headers["Authorization"] = f"Bearer {token}"
        body = run.get("body")
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode() if body is not None else None
        if data is not None:
            headers.setdefault("Content-Type", run.get("content_type", "application/json"))
        shown = f"curl -sk -X {method} '{url}'"
        for k, v in headers.items():
            shown += f" -H '{k}: {_mask(v)}'"
        if data is not None:
            shown += f" -d '{_clip(data.decode(), 3)}'"
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # as `curl -k`: the attacker does not care whom they talk to
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with opener.open(req, timeout=float(run.get("timeout", 15))) as resp:
                payload = resp.read(1 << 20).decode(errors="replace")
                return shown, decide.Result(output=f"HTTP {resp.status}\n{payload}", status=resp.status)
        except urllib.error.HTTPError as e:
            payload = e.read(1 << 16).decode(errors="replace")
            return shown, decide.Result(output=f"HTTP {e.code}\n{payload}", status=e.code)
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            return shown, decide.Result(output=f"curl: (7) Failed to connect: {reason}", status=0, exit=7)

    # -- the phases ---------------------------------------------------------------------------------------

    def apply(self, manifests: str, *, delete: bool = False) -> None:
        manifests = decide.substitute(manifests, self.base_vars())
        verb = ["delete", "--ignore-not-found", "--wait=false"] if delete else ["apply"]
        r = self.cluster.kubectl(*verb, "-f", "-", input=manifests, timeout=120)
        if r.returncode != 0:
            raise LabError(f"kubectl {verb[0]} failed: {r.stderr.strip() or r.stdout.strip()}")

    def wait_pods(self, pods: list[str], timeout: float = 120) -> None:
        for item in pods:
            ns, _, name = item.partition("/")
            deadline = time.monotonic() + timeout
            while True:
                r = self.cluster.kubectl("get", "pod", name, "-n", ns, "-o",
                                         "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}")
                if r.returncode == 0 and r.stdout.strip() == "True":
                    break
                if time.monotonic() > deadline:
                    d = self.cluster.kubectl("describe", "pod", name, "-n", ns)
                    raise LabError(f"pod {item} not Ready in {timeout:.0f}s:\n{_clip(d.stdout, 40)}")
                time.sleep(0.3)

    def check_runtime(self, s: Scenario) -> str:
        if not s.needs_containers:
            return "simulated"
        ok, why = real_containers_possible()
        if not ok:
            raise SkipScenario(msg("needs_root", self.lang, id=s.id, why=why))
        from .image import find_busybox

        if find_busybox() is None:
            raise SkipScenario(msg("needs_root", self.lang, id=s.id, why="no static busybox for the lab image"))
        return "runc"

    def start(self, s: Scenario, mode: str = "weak") -> None:
        """Start (or restart) the cluster for `s` in `mode`: weak, or default (no weakening)."""
        c = self.cluster
        runtime = self.check_runtime(s)
        if c.state.scenario and (c.state.scenario != s.id or c.state.runtime != runtime or mode == "default"):
            c.wipe()  # a different scenario: a fresh cluster, nothing left over from the last one
        c.state.scenario, c.state.mode, c.state.runtime = s.id, mode, runtime
        c.state.addons = list(s.addons)
        if "--kubelet-arg=read-only-port=10255" in s.weak_flags():
            c.state.read_only_port = 10255
        self.say(msg("starting", self.lang))
        began = time.monotonic()
        c.start(decide.substitute(s.weak_flags(), self.base_vars()) if mode == "weak" else [])
        self.say(f"{msg('ready', self.lang)} ({time.monotonic() - began:.1f}s): {c.url}   "
                 f"KUBECONFIG={c.kubeconfig}")
        if s.setup.get("manifests"):
            self.apply(s.setup["manifests"])
        if mode == "weak" and s.weak.get("manifests"):
            self.apply(s.weak["manifests"])
        if s.setup.get("wait"):
            self.wait_pods(list(s.setup["wait"]))
        c.save()

    def print_story(self, s: Scenario) -> None:
        self.say(f"== {s.id}: {text(s.title, self.lang)}  [{s.technique.get('id')} {s.technique.get('name', '')}, "
                 f"{s.difficulty}]")
        self.say(f"{msg('story', self.lang)}: {text(s.story, self.lang).strip()}")
        weak = s.weak_flags()
        if weak or s.weak.get("manifests"):
            shown = " ".join(weak) or "(objects only)"
            self.say(f"{msg('weak_settings', self.lang)}: {shown}")
        if s.upstream_default:
            self.say(f"{msg('upstream_default', self.lang)}: {text(s.upstream_default, self.lang).strip()}")

    def attack(self, s: Scenario) -> tuple[str, list[dict]]:
        """Run the attack; returns (verdict, one record per step)."""
        self.vars = {}
        self._kubeconfigs = {}
        self.cluster.state.attack_started = _now()
        self.cluster.save()
        time.sleep(0.01)
        self.say(f"-- {msg('attack_of', self.lang)}: {s.id} ({self.cluster.state.mode})")
        outcomes, records = [], []
        for i, step in enumerate(s.attack, 1):
            outcome, record = self._attack_step(i, step)
            outcomes.append(outcome)
            records.append(record)
            if outcome != decide.SUCCEEDED:
                break
        result = decide.verdict(outcomes)
        self.say(f">>> {msg(result, self.lang)}")
        return result, records

    def _attack_step(self, i: int, step: Step) -> tuple[str, dict]:
        self.say(f"[{msg('step', self.lang)} {i}] {text(step.title, self.lang)}")
        deadline = time.monotonic() + float(step.run.get("retry", 0))
        while True:
            try:
                shown, result = self.run_step(step.run)
            except (LabError, KeyError) as e:
                self.say(f"  ! {e}")
                return decide.ERROR, {"step": i, "error": str(e)}
            # `retry: SECONDS`: what the step waits for (a container's first log line) may take a moment
            if decide.step_outcome(step.succeeds_if, step.blocked_if, result) == decide.SUCCEEDED \
                    or time.monotonic() >= deadline:
                break
            time.sleep(1.0)
        self.say("  $ " + _mask(shown).replace("\n", "\n    "))
        self.say("    " + _mask(_clip(result.output)).replace("\n", "\n    "))
        self.vars.update(decide.capture(step.save, result.output))
        outcome = decide.step_outcome(step.succeeds_if, step.blocked_if, result)
        if step.succeeds_if or outcome != decide.SUCCEEDED:
            key = {"succeeded": "step_ok", "blocked": "step_blocked", "error": "step_error"}[outcome]
            self.say(f"  => {msg(key, self.lang)}")
        return outcome, {"step": i, "command": _mask(shown), "exit": result.exit, "status": result.status,
                         "outcome": outcome}

    def defend(self, s: Scenario) -> None:
        c, d = self.cluster, s.defense
        self.say(f"-- {msg('defense', self.lang)}: {text(d['title'], self.lang)}")
        self.say(f"{msg('why', self.lang)}: {text(d['explain'], self.lang).strip()}")
        self.say(f"{msg('diff', self.lang)}:")
        before = c.state.flags
        after = decide.substitute(s.defended_flags(), self.base_vars())
        for name, content in (d.get("host_files") or {}).items():
            path = os.path.join(c.lab_dir, os.path.basename(name))
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                f.write(content)
            self.say(f"  + {path} (0600)")
        for line in self.diff_lines(s, before, after):
            self.say("  " + line)
        if before != after:
            self.say(msg("restarting", self.lang))
            began = time.monotonic()
            c.start(after)
            self.say(f"{msg('ready', self.lang)} ({time.monotonic() - began:.1f}s)")
        if d.get("delete"):
            self.apply(d["delete"], delete=True)
        for args in d.get("commands") or []:
            r = c.kubectl(*decide.substitute(list(args), self.base_vars()), timeout=120)
            self.say(f"  $ kubectl {' '.join(_quote(a) for a in args)}")
            self.say("    " + _clip(r.stdout + r.stderr).replace("\n", "\n    "))
            if r.returncode != 0:
                raise LabError(f"defense command failed: kubectl {' '.join(args)}")
        if d.get("manifests"):
            self.apply(d["manifests"])
        if d.get("rewrite_secrets"):
            self.rewrite_secrets()
        if d.get("wait"):
            self.wait_pods(list(d["wait"]))
        if d.get("settle"):
            time.sleep(float(d["settle"]))  # nodes program rules (NetworkPolicy, kubelet restart) asynchronously
        c.state.mode = "defended"
        c.save()

    def rewrite_secrets(self) -> None:
        """`kubectl get secrets -A -o json | kubectl replace -f -`: every Secret written again, now encrypted."""
        self.say("  $ kubectl get secrets -A -o json | kubectl replace -f -")
        got = self.cluster.kubectl("get", "secrets", "-A", "-o", "json")
        if got.returncode != 0:
            raise LabError(f"kubectl get secrets failed: {got.stderr.strip()}")
        r = self.cluster.kubectl("replace", "-f", "-", input=got.stdout, timeout=120)
        self.say("    " + _clip(r.stdout + r.stderr, 4).replace("\n", "\n    "))
        if r.returncode != 0:
            raise LabError(f"kubectl replace failed: {r.stderr.strip()}")

    @staticmethod
    def diff_lines(s: Scenario, before: list[str], after: list[str]) -> list[str]:
        lines = []
        if before != after:
            lines += [ln.rstrip("\n") for ln in difflib.unified_diff(
                [f + "\n" for f in ["kubelite up …", *before]], [f + "\n" for f in ["kubelite up …", *after]],
                "weak/command-line", "defended/command-line", n=1)]
        d = s.defense
        for obj in _objects(d.get("delete")):
            lines.append(f"- {obj}")
        if d.get("manifests"):
            lines += ["+ " + ln for ln in str(d["manifests"]).strip("\n").splitlines() if ln.strip() != "---"]
        for args in d.get("commands") or []:
            lines.append("$ kubectl " + " ".join(_quote(a) for a in args))
        if d.get("diff"):
            lines += str(d["diff"]).rstrip("\n").splitlines()
        return lines

    # -- evidence -----------------------------------------------------------------------------------------

    def evidence(self, s: Scenario, since: str | None = None) -> list[str]:
        since = since if since is not None else self.cluster.state.attack_started
        found = self.audit_matches(s.evidence.get("audit") or [], since)
        self.say(f"-- {msg('evidence', self.lang)}: {msg('audit_lines', self.lang)} ({self.cluster.audit_log})")
        for line in found[-20:]:
            self.say("  " + line)
        if not found:
            self.say("  " + msg("none_found", self.lang))
        pattern = s.evidence.get("log")
        if pattern:  # components without an audit log of their own (the kubelet API) leave their trace here
            lines = self.log_matches(str(pattern), since)
            self.say(f"-- {msg('evidence', self.lang)}: {self.cluster.log_path}")
            for line in lines[-20:]:
                self.say("  " + _clip(line))
            if not lines:
                self.say("  " + msg("none_found", self.lang))
            found = found + lines
        ev = s.evidence.get("events")
        if ev:
            args = ["get", "events", "-n", ev.get("namespace", "default"), "--sort-by=.lastTimestamp"]
            if ev.get("reason"):
                args += ["--field-selector", f"reason={ev['reason']}"]
            r = self.cluster.kubectl(*args)
            self.say(f"-- {msg('events', self.lang)}:")
            self.say("  " + _clip(r.stdout.strip() or r.stderr.strip() or msg("none_found", self.lang))
                     .replace("\n", "\n  "))
        return found

    def log_matches(self, pattern: str, since: str) -> list[str]:
        """Lines of the cluster's log matching `pattern`, logged at or after `since` (RFC 3339, UTC)."""
        regex = re.compile(pattern)
        out = []
        try:
            f = open(self.cluster.log_path, errors="replace")
        except OSError:
            return out
        with f:
            for line in f:
                if not regex.search(line):
                    continue
                try:  # "2026-12-08 01:20:17,309 name LEVEL message", local time
                    when = dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").astimezone(dt.UTC)
                except ValueError:
                    continue
                if since and when.strftime("%Y-%m-%dT%H:%M:%S.%fZ") < since:
                    continue
                out.append(line.rstrip())
        return out

    def audit_matches(self, queries: list[dict], since: str) -> list[str]:
        out = []
        try:
            f = open(self.cluster.audit_log, errors="replace")
        except OSError:
            return out
        with f:
            for line in f:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if since and ev.get("requestReceivedTimestamp", "") < since:
                    continue
                if any(_audit_match(q, ev) for q in queries):
                    out.append(_audit_summary(ev))
        return out


class SkipScenario(Exception):
    pass


def _audit_match(q: dict, ev: dict) -> bool:
    user = (ev.get("user") or {}).get("username", "")
    imp = (ev.get("impersonatedUser") or {}).get("username", "")
    ref = ev.get("objectRef") or {}
    code = (ev.get("responseStatus") or {}).get("code")
    checks = {
        "user": lambda v: _glob(v, user),
        "impersonated": lambda v: _glob(v, imp),
        "verb": lambda v: ev.get("verb") in (v if isinstance(v, list) else [v]),
        "resource": lambda v: ref.get("resource") in (v if isinstance(v, list) else [v]),
        "subresource": lambda v: ref.get("subresource") == v,
        "namespace": lambda v: ref.get("namespace") == v,
        "name": lambda v: ref.get("name") == v,
        "code": lambda v: code in (v if isinstance(v, list) else [v]),
        "uri": lambda v: v in ev.get("requestURI", ""),
    }
    return all(checks[k](v) for k, v in q.items() if k in checks)


def _glob(pattern: str, value: str) -> bool:
    return value.startswith(pattern[:-1]) if pattern.endswith("*") else value == pattern


def _audit_summary(ev: dict) -> str:
    user = (ev.get("user") or {}).get("username", "")
    imp = (ev.get("impersonatedUser") or {}).get("username")
    who = f"{user} as {imp}" if imp else user
    code = (ev.get("responseStatus") or {}).get("code", "")
    decision = (ev.get("annotations") or {}).get("authorization.k8s.io/decision", "")
    ts = ev.get("requestReceivedTimestamp", "")[:23]
    return f"{ts} user={who} verb={ev.get('verb')} {ev.get('requestURI', '')} -> {code}" + \
        (f" ({decision})" if decision else "")


def _objects(manifests: str | None) -> list[str]:
    out = []
    for doc in yaml.safe_load_all(manifests or ""):
        if isinstance(doc, dict):
            meta = doc.get("metadata") or {}
            ns = f" -n {meta['namespace']}" if meta.get("namespace") else ""
            out.append(f"{doc.get('kind')}/{meta.get('name')}{ns}")
    return out


def _quote(arg: str) -> str:
    return arg if re.fullmatch(r"[A-Za-z0-9_./:=,@%+-]+", arg or "x") else "'" + arg.replace("'", "'\\''") + "'"
