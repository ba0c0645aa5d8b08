"""The ingress controller against a real API server, routing real HTTP to backends on loopback (C.10)."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import subprocess
import time

import aiohttp
from aiohttp import web

from kubelite.client import ApiClient
from kubelite.proxy.catalog import ENDPOINTS, ENDPOINTSLICES, INGRESSCLASSES, INGRESSES, SECRETS, SERVICES
from kubelite.proxy.ingress import IngressConfig, IngressController
from kubelite.proxy.ingress_tls import self_signed

INGRESS_YAML = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: demo
spec:
  tls:
  - hosts: [secure.example.com]
    secretName: secure-tls
  rules:
  - host: a.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: svc-a
            port:
              number: 80
  - host: b.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: svc-b
            port:
              name: http
      - path: /empty
        pathType: Exact
        backend:
          service:
            name: svc-empty
            port:
              number: 80
  - host: secure.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: svc-a
            port:
              number: 80
"""


async def backend(name: str) -> tuple[web.AppRunner, int]:
    async def echo(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await ws.send_str(f"{name}:{msg.data}")
            return ws
        body = await request.read()
        if request.path == "/stream":
            resp = web.StreamResponse()
            await resp.prepare(request)
            for i in range(3):
                await resp.write(f"chunk{i};".encode())
            await resp.write_eof()
            return resp
        return web.json_response({"backend": name, "path": request.path_qs, "method": request.method,
                                  "body": body.decode(), "headers": dict(request.headers)})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


def curl(*args: str) -> tuple[int, str]:
    out = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", *args], capture_output=True, text=True,
                         timeout=20)
    body, _, code = out.stdout.rpartition("\n")
    return int(code or 0), body


async def wait_for(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


async def test_ingress_routes_real_traffic(fresh_cluster):
    cluster = fresh_cluster
    api = ApiClient.from_kubeconfig(cluster.kubeconfig)
    runners = []
    ctl = IngressController(api, IngressConfig(listen_host="127.0.0.1", http_port=0, https_port=0,
                                               status_addresses=["192.0.2.2"]))
    try:
        (ra, pa), (rb1, pb1), (rb2, pb2) = [await backend(n) for n in ("a", "b1", "b2")]
        runners += [ra, rb1, rb2]
        for name in ("svc-a", "svc-b", "svc-empty"):
            await api.create(SERVICES, {"metadata": {"name": name}, "spec": {
                "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}, "default")
        await api.create(ENDPOINTSLICES, {
            "metadata": {"name": "svc-a-1", "labels": {"kubernetes.io/service-name": "svc-a"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": pa, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]}, "default")
        # svc-b only has (legacy) Endpoints: two backends on different ports, one not ready
        await api.create(ENDPOINTS, {"metadata": {"name": "svc-b"}, "subsets": [
            {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "http", "port": pb1}]},
            {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "http", "port": pb2}]},
            {"notReadyAddresses": [{"ip": "127.0.0.2"}], "ports": [{"name": "http", "port": 9}]}]}, "default")
        cert, key = self_signed("secure.example.com", ("secure.example.com",))
        await api.create(SECRETS, {"metadata": {"name": "secure-tls"}, "type": "kubernetes.io/tls", "data": {
            "tls.crt": base64.b64encode(cert).decode(), "tls.key": base64.b64encode(key).decode()}}, "default")
        await ctl.start()
        cls = await api.get(INGRESSCLASSES, None, "kubelite")
        assert cls["spec"]["controller"] == "kubelite.io/ingress-controller"
        assert cls["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"] == "true"

        await asyncio.to_thread(cluster.kubectl, "apply", "-f", "-", input=INGRESS_YAML, check=True)
        base = f"http://127.0.0.1:{ctl.http_port}"

        async def routed():
            code, body = await asyncio.to_thread(curl, "-H", "Host: a.example.com", f"{base}/hello?x=1")
            return code == 200 and json.loads(body)
        got = await wait_for(routed, what="the Ingress to route")
        assert got["backend"] == "a" and got["path"] == "/hello?x=1"
        h = got["headers"]
        assert h["Host"] == "a.example.com" and h["X-Forwarded-Host"] == "a.example.com"
        assert h["X-Forwarded-For"] == "127.0.0.1" and h["X-Forwarded-Proto"] == "http"
        assert h["X-Forwarded-Port"] == str(ctl.http_port) and h["X-Real-IP"] == "127.0.0.1"

        # host b: round-robin over the two ready endpoints, never the not-ready one
        seen = set()
        for _ in range(4):
            code, body = await asyncio.to_thread(curl, "-H", "Host: b.example.com", f"{base}/")
            assert code == 200
            seen.add(json.loads(body)["backend"])
        assert seen == {"b1", "b2"}

        # bodies in and out are streamed
        code, body = await asyncio.to_thread(curl, "-H", "Host: a.example.com", "--data-binary", "x" * 100000,
                                             f"{base}/post")
        assert code == 200 and json.loads(body)["body"] == "x" * 100000 and json.loads(body)["method"] == "POST"
        code, body = await asyncio.to_thread(curl, "-H", "Host: a.example.com", f"{base}/stream")
        assert (code, body) == (200, "chunk0;chunk1;chunk2;")

        # no rule: 404; no endpoints: 503
        code, body = await asyncio.to_thread(curl, "-H", "Host: nobody.example.com", f"{base}/")
        assert code == 404 and "404 Not Found" in body
        code, _ = await asyncio.to_thread(curl, "-H", "Host: b.example.com", f"{base}/empty")
        assert code == 503

        # WebSocket upgrade passes through
        async with aiohttp.ClientSession() as s, s.ws_connect(f"{base}/ws", headers={"Host": "a.example.com"}) as ws:
            await ws.send_str("ping")
            assert (await ws.receive(timeout=5)).data == "a:ping"

        # HTTPS: the Secret's certificate for its host (SNI), the default one otherwise
        def served_cn(server_name: str) -> str:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            import socket
            with socket.create_connection(("127.0.0.1", ctl.https_port), timeout=5) as raw, \
                    ctx.wrap_socket(raw, server_hostname=server_name) as tls:
                from cryptography import x509
                c = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
                return c.subject.rfc4514_string()
        assert await asyncio.to_thread(served_cn, "secure.example.com") == "CN=secure.example.com"
        assert "Fake Certificate" in await asyncio.to_thread(served_cn, "other.example.com")
        code, body = await asyncio.to_thread(
            curl, "-k", "--resolve", f"secure.example.com:{ctl.https_port}:127.0.0.1",
            f"https://secure.example.com:{ctl.https_port}/tls")
        assert code == 200 and json.loads(body)["headers"]["X-Forwarded-Proto"] == "https"

        # status: the address shows in kubectl get ingress
        async def address():
            ing = await api.get(INGRESSES, "default", "demo")
            return ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress")
        assert await wait_for(address, what="ingress status") == [{"ip": "192.0.2.2"}]
        out = (await asyncio.to_thread(cluster.kubectl, "get", "ingress", "demo", check=True)).stdout
        assert "192.0.2.2" in out and "a.example.com" in out

        # an Ingress of another class is not served
        await api.create(INGRESSES, {"metadata": {"name": "foreign"}, "spec": {
            "ingressClassName": "nginx", "rules": [{"host": "c.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "svc-a", "port": {"number": 80}}}}]}}]}}, "default")
        await asyncio.sleep(0.3)
        code, _ = await asyncio.to_thread(curl, "-H", "Host: c.example.com", f"{base}/")
        assert code == 404

        # deleting the Ingress stops the routing
        await api.delete(INGRESSES, "default", "demo")

        async def unrouted():
            code, _ = await asyncio.to_thread(curl, "-H", "Host: a.example.com", f"{base}/")
            return code == 404
        await wait_for(unrouted, what="404 after delete")
    finally:
        await ctl.stop()
        for r in runners:
            await r.cleanup()
        await api.close()
