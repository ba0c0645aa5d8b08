"""The API server's HTTP application: one entry point that authenticates, authorizes and dispatches."""

from __future__ import annotations

import logging
import traceback

import orjson
from aiohttp import web
from multidict import CIMultiDict

from ..api import (
    discovery,
    errors,
    kind_warnings,
    openapi,
    openapi_v2_proto,
    printers_more,  # noqa: F401  (registers the printers of the stored-only kinds)
)
from ..api.resources import ResourceType
from . import audit, certificates, crds, legacy_core, metrics_api, patching, rest, watch
from .authn import Authentication
from .authz import forbidden_for, set_current_user
from .context import ApiContext
from .impersonation import impersonate
from .pod_binding import create_binding
from .pod_proxy import handlers as pod_proxy_handlers
from .request_info import RequestInfo, parse
from .responses import check_acceptable, error_response, json_response, raw_json_response, warning_header
from .storage_errors import StoreError, storage_status

log = logging.getLogger("kubelite.apiserver")

_HEALTH = ("/healthz", "/livez", "/readyz")
_STATUS_SUBRESOURCE = "status"


def build_app(ctx: ApiContext, authentication: Authentication, authorizer, auditor=None) -> web.Application:
    app = web.Application(client_max_size=rest.bodies.MAX_BODY_BYTES + 1)
    app["ctx"] = ctx
    app["auditor"] = auditor  # apiserver.audit.Auditor, or None when --audit-policy-file/--audit-log-path are unset
    app.on_response_prepare.append(audit.on_response_prepare)  # Audit-Id header, ResponseStarted stage
    app.on_response_prepare.append(_deprecation_warning)
    app["watch_decode_cache"] = watch.DecodeCache()
    watch.install(app)  # open watches end cleanly on shutdown
    app["subresource_handlers"] = {("", "pods", "binding"): create_binding, **pod_proxy_handlers()}
    app["create_handlers"] = {**app.get("create_handlers", {}), ("", "bindings"): legacy_core.create_legacy_binding}
    certificates.install(app, ctx)  # CSR strategy, the approval subresource, the certificate admission plugins
    handler = Dispatcher(ctx, authentication, authorizer, auditor)
    app.router.add_route("*", "/{tail:.*}", handler.handle)
    return app


async def _deprecation_warning(request: web.Request, response: web.StreamResponse) -> None:
    """Every request to a deprecated resource version is answered with upstream's warning (watches too)."""
    text = request.get("deprecation")
    if text:
        response.headers.add("Warning", warning_header(text))


def go_read_headers(request: web.Request) -> web.Request:
    """The request with header values as Go's JSON encoding reads them: every byte that is not UTF-8
    (aiohttp keeps it as a lone surrogate) becomes U+FFFD. Status messages naming the impersonated user,
    managedFields naming the User-Agent and audit events then always encode."""
    bad = False
    for value in request.headers.values():
        if not value.isascii() and _has_surrogate(value):
            bad = True
            break
    if not bad:
        return request
    fixed = CIMultiDict((k, audit.valid_utf8(v)) for k, v in request.headers.items())
    return request.clone(headers=fixed)


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class Dispatcher:
    def __init__(self, ctx: ApiContext, authentication: Authentication, authorizer, auditor=None) -> None:
        self.ctx = ctx
        self.authentication = authentication
        self.authorizer = authorizer
        self.auditor = auditor
        self._version = discovery.version_info(ctx.config.kubernetes_version.split(".")[1])

    async def handle(self, request: web.Request) -> web.StreamResponse:
        request = go_read_headers(request)
        if self.auditor is not None:
            return await self.auditor.around(request, self._handle)
        return await self._handle(request)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        auditor = self.auditor
        try:
            info = parse(request.method, request.raw_path, request.query)
            try:
                user = await self.authentication.authenticate(request)
            except errors.ApiError:
                if auditor is not None:
                    auditor.failed_authentication(request, info)
                raise
            if auditor is not None:
                await auditor.received(request, info, user)
            user = await impersonate(request, user, self.authorizer)
            allowed, reason = await self.authorizer.authorize(user, info)
            if auditor is not None:
                request["user"] = user  # the impersonated user, for the event's impersonatedUser
                audit.add_annotations(request, {"authorization.k8s.io/decision": "allow" if allowed else "forbid",
                                                "authorization.k8s.io/reason": reason})
            if not allowed:
                raise forbidden_for(user, info, reason)
            request["user"] = user
            set_current_user(user)  # for admission and the RBAC escalation checks
            if info.is_resource:
                return await self.resource(request, info)
            return await self.non_resource(request, info)
        except errors.ApiError as e:
            return error_response(e)
        except RecursionError:
            return error_response(errors.bad_request("the request is nested too deeply"))
        except (ConnectionResetError, web.HTTPException):
            raise
        except StoreError as e:  # the store cannot serve (etcd down, no quorum): 503/504, one log line
            status = storage_status(e)
            log.warning("%s %s: %d %s: %s", request.method, request.path, status.code, status.reason, e)
            return error_response(status)
        except Exception as e:  # a bug must still answer a Status, and be logged with its traceback
            log.error("internal error on %s %s: %s", request.method, request.path, traceback.format_exc())
            request["audit_panic"] = e  # audited as the Panic stage
            return error_response(errors.internal(str(e) or type(e).__name__))

    # ------------------------------------------------------------ non-resource endpoints

    async def non_resource(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        path = info.path.rstrip("/") or "/"
        if request.method not in ("GET", "HEAD"):
            if path in ("/api", "/apis") or path.startswith(("/api/", "/apis/")):
                raise errors.method_not_allowed(request.method, "")
            raise _not_found()
        ctx = self.ctx
        accept = request.headers.get("Accept", "")
        if path == "/version":
            return raw_json_response(self._version)  # WriteRawJSON: indented, no newline
        if path in _HEALTH or path.startswith(tuple(h + "/" for h in _HEALTH)):
            if path.startswith("/readyz") and not ctx.ready:
                return web.Response(status=500, text="[-]kubelite-ready failed: not ready\nreadyz check failed",
                                    content_type="text/plain")
            if "verbose" in request.query:
                return web.Response(text="[+]ping ok\n[+]etcd ok\nhealthz check passed\n", content_type="text/plain")
            return web.Response(text="ok", content_type="text/plain")
        if path == "/api":
            aggregated = discovery.wants_aggregated(accept)
            if aggregated:
                body = discovery.aggregated_discovery(ctx.registry, True, discovery.aggregated_api_version(aggregated))
                return json_response(body, content_type=aggregated)
            return json_response(discovery.api_versions(request.host or "127.0.0.1"))
        if path == "/apis":
            aggregated = discovery.wants_aggregated(accept)
            if aggregated:
                body = discovery.aggregated_discovery(ctx.registry, False,
                                                      discovery.aggregated_api_version(aggregated))
                return json_response(body, content_type=aggregated)
            return json_response(discovery.api_group_list(ctx.registry))
        if info.api_prefix == "api" and info.version and path == f"/api/{info.version}":
            doc = discovery.api_resource_list(ctx.registry, "", info.version)
            if doc is None:
                raise _not_found()
            return json_response(doc)
        if info.api_prefix == "apis" and info.group:
            if path == f"/apis/{info.group}":
                doc = discovery.api_group(ctx.registry, info.group)
            elif info.version and path == f"/apis/{info.group}/{info.version}":
                doc = discovery.api_resource_list(ctx.registry, info.group, info.version)
            else:
                doc = None
            if doc is None:
                raise _not_found()
            return json_response(doc)
        if path == "/openapi/v3":
            return json_response(openapi.openapi_v3_index(ctx.registry), newline=False)
        if path.startswith("/openapi/v3/"):
            doc = openapi.openapi_v3_path(ctx.registry, path[len("/openapi/v3/"):])
            if doc is None:
                raise _not_found()
            return json_response(doc, newline=False)
        if path == "/openapi/v2":
            media = openapi_v2_proto.negotiate(accept)
            if media is None:
                raise errors.not_acceptable(accept)
            tag = openapi_v2_proto.etag(ctx.registry)
            headers = {"Etag": tag, "Vary": "Accept", "Cache-Control": "no-cache, private"}
            if request.headers.get("If-None-Match") == tag:
                return web.Response(status=304, headers=headers)
            if media == openapi_v2_proto.MEDIA_TYPE:
                return web.Response(body=openapi_v2_proto.openapi_v2_protobuf(ctx.registry),
                                    headers={**headers, "Content-Type": media})
            response = json_response(openapi.openapi_v2(ctx.registry), newline=False)
            response.headers.update(headers)
            return response
        if path == "/":
            return raw_json_response({"paths": sorted(_root_paths(ctx))})
        raise _not_found()

    # ------------------------------------------------------------ resources

    async def resource(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        ctx = self.ctx
        rt = ctx.registry.get(info.group, info.version, info.resource)
        if rt is None or len(info.parts) > 3:
            raise _not_found()
        rest.check_path_names(info)
        if not rt.namespaced and info.namespace and not (rt.kind == "Namespace" and rt.group == ""):
            raise _not_found()
        check_acceptable(request.headers.get("Accept", ""))
        request["deprecation"] = kind_warnings.deprecation(rt)  # a Warning header on every answer (see below)
        verb = info.verb
        if rt.group == metrics_api.GROUP:  # computed from the kubelets, never stored
            return await metrics_api.handle(ctx, request, info, rt)
        if info.subresource:
            return await self.subresource(request, info, rt)
        if verb not in rt.verbs:
            raise errors.method_not_allowed(request.method, rt.kind)
        if rt.namespaced and not info.namespace and verb not in ("list", "watch"):
            if verb == "create":
                raise errors.method_not_allowed(request.method, rt.kind)
            raise _not_found()
        special = crds.special_handler(rt, info, request)  # CRD lifecycle, custom-resource patch rules
        if special is not None:
            return await special(ctx, request, info, rt)
        if rt.group == "" and rt.resource == "componentstatuses":  # computed, never stored
            return await legacy_core.component_statuses(ctx, request, info, rt)
        if verb == "get":
            return await rest.get(ctx, request, info, rt)
        if verb == "list":
            return await rest.list_(ctx, request, info, rt)
        if verb == "watch":
            return await watch.watch(ctx, request, info, rt)
        if verb == "create":
            if info.name:
                raise errors.method_not_allowed(request.method, rt.kind)
            # create-only virtual resources (reviews) answer without storing anything
            create_handler = request.app.get("create_handlers", {}).get((rt.group, rt.resource))
            if create_handler is not None:
                return await create_handler(ctx, request, info, rt)
            return await rest.create(ctx, request, info, rt)
        if verb == "update":
            return await rest.update(ctx, request, info, rt)
        if verb == "patch":
            return await patching.patch_resource(ctx, request, info, rt)
        if verb == "delete":
            return await rest.delete(ctx, request, info, rt)
        if verb == "deletecollection":
            return await rest.delete_collection(ctx, request, info, rt)
        raise errors.method_not_allowed(request.method, rt.kind)

    async def subresource(self, request: web.Request, info: RequestInfo, rt: ResourceType) -> web.StreamResponse:
        ctx = self.ctx
        sub = rt.subresource(info.subresource)
        if sub is None:
            raise _not_found()
        verb = info.verb
        if verb not in sub.verbs:
            raise errors.method_not_allowed(request.method, sub.kind or rt.kind)
        special = crds.special_handler(rt, info, request)  # custom scale paths, CRD status writes
        if special is not None:
            return await special(ctx, request, info, rt)
        if sub.name == "status" or (sub.name == "finalize" and rt.kind == "Namespace"):
            if verb == "get":
                return await rest.get(ctx, request, info, rt)
            if verb == "update":
                if sub.name == "finalize":
                    return await _finalize_namespace(ctx, request, info, rt)
                return await rest.update(ctx, request, info, rt)
            if verb == "patch":
                return await patching.patch_resource(ctx, request, info, rt)
        if sub.name == "scale":
            if verb == "get":
                return await patching.get_scale(ctx, request, info, rt)
            if verb == "update":
                return await patching.update_scale(ctx, request, info, rt)
            if verb == "patch":
                return await patching.patch_resource(ctx, request, info, rt)
        handler = request.app.get("subresource_handlers", {}).get((rt.group, rt.resource, sub.name))
        if handler is not None:
            return await handler(ctx, request, info, rt)
        raise errors.ApiError(503, "ServiceUnavailable",
                              f"the {sub.name} subresource of {errors.qualified(rt.resource, rt.group)} is not "
                              f"available: no node agent serves it yet")


async def _finalize_namespace(ctx: ApiContext, request: web.Request, info: RequestInfo,
                              rt: ResourceType) -> web.StreamResponse:
    body, _ = await rest.read_object(request)
    finalizers = (body.get("spec") or {}).get("finalizers") or []

    def mutate(current):
        current.setdefault("spec", {})["finalizers"] = finalizers
        if not finalizers:
            current["spec"].pop("finalizers")
        return current

    result, status = await rest.update_object(ctx, rt, info, mutate, subresource="finalize")
    if not finalizers and result["metadata"].get("deletionTimestamp") and not result["metadata"].get("finalizers"):
        try:
            await ctx.store.delete(rt.key("", info.name))
        except Exception:  # already gone
            pass
    return json_response(result, status)


def _not_found() -> errors.ApiError:
    return errors.ApiError(404, "NotFound", "the server could not find the requested resource", {})


def _root_paths(ctx: ApiContext) -> list[str]:
    paths = {"/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version", "/openapi/v2", "/openapi/v3"}
    for group, versions in ctx.registry.groups():
        paths.add(f"/apis/{group}")
        for v in versions:
            paths.add(f"/apis/{group}/{v}")
    return list(paths)


def dumps(obj) -> bytes:
    return orjson.dumps(obj)
