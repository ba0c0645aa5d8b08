#!/usr/bin/env python3
"""Capture the protobuf request bodies real kubectl sends, as fixtures for tests/api/test_protobuf.py.

A tiny aiohttp server on 127.0.0.1 (free port, plain http) answers `/version` (minor "33", so the
gcloud dispatcher runs kubectl 1.33), aggregated discovery for `/api` and `/apis`, and records every
POST body. Each command is also run with `--dry-run=client -o json` (where kubectl has it) to get
the JSON form the body must decode to; for token/auth commands the expected JSON is written here.

Output: tests/api/fixtures/protobuf/<case>.bin (the raw body) and <case>.json
({"command", "method", "path", "content_type", "expected"}).

Run: python scripts/capture_protobuf_fixtures.py [--kubectl /usr/bin/kubectl] [--out DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading

from aiohttp import web

from kubelite.api.resources import BUILTIN

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "tests", "api", "fixtures", "protobuf")

AUTH_RESOURCES = [
    ("authentication.k8s.io", "tokenreviews", "TokenReview", False),
    ("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview", False),
    ("authorization.k8s.io", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False),
    ("authorization.k8s.io", "selfsubjectrulesreviews", "SelfSubjectRulesReview", False),
    ("authorization.k8s.io", "subjectaccessreviews", "SubjectAccessReview", False),
    ("authorization.k8s.io", "localsubjectaccessreviews", "LocalSubjectAccessReview", True),
]

# Go's JSON of an object with an empty ObjectMeta
META = {"creationTimestamp": None}

# (case name, kubectl args, dry-run JSON available, expected JSON when not: what the body means,
# written as Go's encoding/json would print the decoded object)
CASES: list[tuple[str, list[str], bool, dict | None]] = [
    ("namespace", ["create", "namespace", "ns1"], True, None),
    ("configmap", ["create", "configmap", "x", "--from-literal=a=b"], True, None),
    ("secret", ["create", "secret", "generic", "s", "--from-literal=k=v"], True, None),
    ("secret_docker", ["create", "secret", "docker-registry", "reg", "--docker-server=r.example",
                       "--docker-username=u", "--docker-password=p"], True, None),
    ("serviceaccount", ["create", "serviceaccount", "sa1"], True, None),
    ("deployment", ["create", "deployment", "d", "--image=nginx", "--replicas=2", "--port=80"], True, None),
    ("deployment_zero", ["create", "deployment", "d0", "--image=nginx", "--replicas=0"], True, None),
    ("service_clusterip", ["create", "service", "clusterip", "svc1", "--tcp=5678:8080"], True, None),
    ("service_headless", ["create", "service", "clusterip", "hl", "--clusterip=None"], True, None),
    ("service_nodeport", ["create", "service", "nodeport", "svc2", "--tcp=5678:8080", "--node-port=30080"],
     True, None),
    ("service_externalname", ["create", "service", "externalname", "ext", "--external-name=example.com"],
     True, None),
    ("job", ["create", "job", "j", "--image=busybox", "--", "echo", "hi"], True, None),
    ("cronjob", ["create", "cronjob", "cj", "--image=busybox", "--schedule=*/1 * * * *", "--", "date"],
     True, None),
    ("role", ["create", "role", "r", "--verb=get,list", "--resource=pods,deployments.apps",
              "--resource-name=x"], True, None),
    ("rolebinding", ["create", "rolebinding", "rb", "--role=r", "--user=alice",
                     "--serviceaccount=default:sa1"], True, None),
    ("clusterrole", ["create", "clusterrole", "cr", "--verb=get,list,watch", "--resource=pods"], True, None),
    ("clusterrole_nonresource", ["create", "clusterrole", "crn", "--verb=get", "--non-resource-url=/logs/*"],
     True, None),
    ("clusterrolebinding", ["create", "clusterrolebinding", "crb", "--clusterrole=cr", "--group=devs"],
     True, None),
    ("quota", ["create", "quota", "q", "--hard=cpu=1,memory=1G,pods=2", "--scopes=BestEffort"], True, None),
    ("priorityclass", ["create", "priorityclass", "pc", "--value=1000", "--description=high"], True, None),
    ("priorityclass_zero", ["create", "priorityclass", "pc0", "--value=0", "--global-default",
                            "--preemption-policy=Never"], True, None),
    ("pdb", ["create", "pdb", "p", "--selector=app=x", "--min-available=1"], True, None),
    ("pdb_percent", ["create", "pdb", "p2", "--selector=app=x", "--max-unavailable=50%"], True, None),
    ("ingress", ["create", "ingress", "ing", "--rule=foo.com/bar=svc1:8080",
                 "--rule=tls.example/*=svc2:http,tls=my-cert", "--class=nginx",
                 "--annotation=a=b"], True, None),
    ("token", ["create", "token", "sa1"], False, {
        "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "metadata": META,
        "spec": {"audiences": None}, "status": {"token": "", "expirationTimestamp": None}}),
    ("token_options", ["create", "token", "sa1", "--audience=a1", "--audience=a2", "--duration=1h",
                       "--bound-object-kind=Pod", "--bound-object-name=p1",
                       "--bound-object-uid=0d4f3fd4-ff7e-4f94-9f1e-6e1a8f0b1234"], False, {
        "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "metadata": META,
        "spec": {"audiences": ["a1", "a2"], "expirationSeconds": 3600,
                 "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p1",
                                    "uid": "0d4f3fd4-ff7e-4f94-9f1e-6e1a8f0b1234"}},
        "status": {"token": "", "expirationTimestamp": None}}),
    ("can_i", ["auth", "can-i", "create", "pods"], False, {
        "kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": META,
        "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}},
        "status": {"allowed": False}}),
    # kubectl reads "deployments.apps/scale" as resource/name, hence name "scale"
    ("can_i_subresource", ["auth", "can-i", "get", "deployments.apps/scale", "--subresource=scale",
                           "-n", "kube-system"], False, {
        "kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": META,
        "spec": {"resourceAttributes": {"namespace": "kube-system", "verb": "get", "group": "apps",
                                        "resource": "deployments", "subresource": "scale", "name": "scale"}},
        "status": {"allowed": False}}),
    ("can_i_nonresource", ["auth", "can-i", "get", "/logs"], False, {
        "kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": META,
        "spec": {"nonResourceAttributes": {"path": "/logs", "verb": "get"}}, "status": {"allowed": False}}),
    ("can_i_list", ["auth", "can-i", "--list"], False, {
        "kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1", "metadata": META,
        "spec": {"namespace": "default"},
        "status": {"resourceRules": None, "nonResourceRules": None, "incomplete": False}}),
    ("whoami", ["auth", "whoami"], False, {
        "kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1", "metadata": META,
        "status": {"userInfo": {}}}),
]


def aggregated_discovery(core: bool) -> dict:
    groups: dict[str, list[dict]] = {}
    for rt in BUILTIN:
        if (rt.group == "") != core:
            continue
        groups.setdefault(rt.group, []).append({
            "resource": rt.resource,
            "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
            "scope": "Namespaced" if rt.namespaced else "Cluster",
            "singularResource": rt.singular,
            "shortNames": list(rt.short_names),
            "verbs": list(rt.verbs),
            "subresources": [{"subresource": s.name, "verbs": list(s.verbs),
                              "responseKind": {"group": s.group or rt.group, "version": s.version or rt.version,
                                               "kind": s.kind or rt.kind}} for s in rt.subresources],
        })
    if not core:
        for group, resource, kind, namespaced in AUTH_RESOURCES:
            groups.setdefault(group, []).append({
                "resource": resource, "responseKind": {"group": group, "version": "v1", "kind": kind},
                "scope": "Namespaced" if namespaced else "Cluster", "singularResource": kind.lower(),
                "verbs": ["create"]})
    items = [{"metadata": {"name": g},
              "versions": [{"version": "v1", "freshness": "Current", "resources": res}]}
             for g, res in groups.items()]
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {},
            "items": items}


def reply_for(path: str) -> dict:
    """A minimal JSON answer for a POST, enough for kubectl to print its success line."""
    parts = path.split("?")[0].strip("/").split("/")
    name = "x"
    if "serviceaccounts" in parts and parts[-1] == "token":
        return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "metadata": {},
                "spec": {"audiences": []}, "status": {"token": "tok", "expirationTimestamp": "2030-01-01T00:00:00Z"}}
    resource = parts[-1]
    if resource == "selfsubjectaccessreviews":
        return {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {},
                "spec": {}, "status": {"allowed": True}}
    if resource == "selfsubjectrulesreviews":
        return {"kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {},
                "spec": {}, "status": {"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                                       "nonResourceRules": [], "incomplete": False}}
    if resource == "selfsubjectreviews":
        return {"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1", "metadata": {},
                "status": {"userInfo": {"username": "admin", "groups": ["system:masters"]}}}
    for rt in BUILTIN:
        if rt.resource == resource:
            return {"kind": rt.kind, "apiVersion": rt.api_version,
                    "metadata": {"name": name, "namespace": "default" if rt.namespaced else None}}
    return {"metadata": {"name": name}}


class Capture:
    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path
        if path == "/version":
            return web.json_response({"major": "1", "minor": "33", "gitVersion": "v1.33.0",
                                      "platform": "linux/amd64"})
        if path in ("/api", "/apis"):
            if "apidiscovery.k8s.io" in request.headers.get("Accept", ""):
                body = aggregated_discovery(core=path == "/api")
                return web.Response(body=json.dumps(body).encode(), headers={
                    "Content-Type": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"})
            return web.json_response({"kind": "APIVersions", "versions": ["v1"]} if path == "/api"
                                     else {"kind": "APIGroupList", "groups": []})
        if request.method == "POST":
            body = await request.read()
            self.posts.append({"method": "POST", "path": request.path_qs,
                               "content_type": request.headers.get("Content-Type", ""), "body": body})
            return web.json_response(reply_for(path), status=201)
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                  "reason": "NotFound", "code": 404, "message": "not found"}, status=404)

    def start(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self.handle)
            self._runner = web.AppRunner(app, access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
            ready.set()
            self._loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        ready.wait(10)

    def stop(self) -> None:
        if self._loop and self._runner:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kubectl", default="/usr/bin/kubectl")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("cases", nargs="*", help="only these cases")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    cap = Capture()
    cap.start()
    failures = 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            kubeconfig = os.path.join(tmp, "config")
            with open(kubeconfig, "w") as f:
                json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "c",
                           "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{cap.port}"}}],
                           "users": [{"name": "u", "user": {}}],
                           "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u",
                                                                  "namespace": "default"}}]}, f)
            base = [args.kubectl, "--kubeconfig", kubeconfig, "--cache-dir", os.path.join(tmp, "cache")]
            env = dict(os.environ, HOME=tmp)
            for name, cmd, has_dry_run, expected in CASES:
                if args.cases and name not in args.cases:
                    continue
                before = len(cap.posts)
                run = subprocess.run(base + cmd, capture_output=True, text=True, env=env, timeout=60)
                posts = cap.posts[before:]
                if not posts:
                    print(f"{name}: no POST (rc={run.returncode}) {run.stderr.strip()}", file=sys.stderr)
                    failures += 1
                    continue
                post = posts[-1]
                if has_dry_run:
                    cut = cmd.index("--") if "--" in cmd else len(cmd)
                    dry_cmd = cmd[:cut] + ["--dry-run=client", "-o", "json"] + cmd[cut:]
                    dry = subprocess.run(base + dry_cmd, capture_output=True,
                                         text=True, env=env, timeout=60)
                    if dry.returncode:
                        print(f"{name}: dry-run failed: {dry.stderr.strip()}", file=sys.stderr)
                        failures += 1
                        continue
                    expected = json.loads(dry.stdout)
                with open(os.path.join(args.out, f"{name}.bin"), "wb") as f:
                    f.write(post["body"])
                meta = {"command": ["kubectl", *cmd], "method": post["method"], "path": post["path"],
                        "content_type": post["content_type"], "expected": expected}
                with open(os.path.join(args.out, f"{name}.json"), "w") as f:
                    json.dump(meta, f, indent=2, ensure_ascii=False)
                    f.write("\n")
                print(f"{name}: {post['path']} {post['content_type']} {len(post['body'])} bytes "
                      f"(rc={run.returncode})", file=sys.stderr)
    finally:
        cap.stop()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
