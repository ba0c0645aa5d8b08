"""CertificateSigningRequests (certificates.k8s.io/v1) in the API server: upstream's CSR strategies, the
`approval` subresource and the CertificateApproval / CertificateSigning / CertificateSubjectRestriction
admission plugins.

- create: spec.username/uid/groups/extra are the requester's, whatever the body says; status starts empty.
- update of the object: only metadata changes (spec and status are kept).
- `/status`: status.certificate and non-approval conditions; Approved/Denied are kept from the stored object.
- `/approval`: only status.conditions; the certificate is kept. Approving needs the `approve` verb on
  `signers` named after the signer (or `<domain>/*`), signing the `sign` verb, as upstream.
"""

from __future__ import annotations

import base64
import binascii
import copy
from typing import Any

from aiohttp import web

from ..api import errors, validation
from ..api import validation_names as vn
from ..api.defaults import apply_defaults
from ..api.resources import ResourceType
from ..api.timefmt import now_rfc3339
from ..pki import csr as pkicsr
from . import objectmeta, patching, rest
from .authz import current_user
from .context import ApiContext
from .rbac import Attrs
from .request_info import RequestInfo

Obj = dict[str, Any]
GROUP = "certificates.k8s.io"
RESOURCE = "certificatesigningrequests"
APPROVED, DENIED, FAILED = "Approved", "Denied", "Failed"
APPROVAL_TYPES = (APPROVED, DENIED)
TERMINAL_TYPES = (APPROVED, DENIED, FAILED)


def _d(v: Any) -> Obj:
    return v if isinstance(v, dict) else {}


def _conditions(obj: Obj) -> list[Obj]:
    return [c for c in _d(obj.get("status")).get("conditions") or [] if isinstance(c, dict)]


def decode_bytes(value: Any) -> bytes | None:
    """A []byte field as JSON carries it (base64); None when it is not valid base64."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


# ------------------------------------------------------------------------------------------- strategy


def _stamp_conditions(new: Obj, old: Obj | None) -> None:
    """Fill in lastUpdateTime and lastTransitionTime as upstream's populateConditionTimestamps."""
    now = now_rfc3339()
    old_by_type = {c.get("type"): c for c in _conditions(old or {})}
    for c in _conditions(new):
        if not c.get("lastUpdateTime"):
            c["lastUpdateTime"] = now
        if not c.get("lastTransitionTime"):
            before = old_by_type.get(c.get("type"))
            if before is not None and before.get("status") == c.get("status") and before.get("lastTransitionTime"):
                c["lastTransitionTime"] = before["lastTransitionTime"]
            else:
                c["lastTransitionTime"] = now


class CSRStrategy:
    def check_fields(self, rt: ResourceType, obj: Any, mode: str | None, duplicates: list[str] | None,
                     options_kind: str) -> list[str]:
        return validation.check_fields(rt, obj, mode, duplicates, options_kind)

    def default(self, rt: ResourceType, obj: Obj) -> None:
        apply_defaults(rt, obj)

    def prepare_for_create(self, rt: ResourceType, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            for key in ("username", "uid", "groups", "extra"):
                spec.pop(key, None)
            user = current_user()
            if user is not None:
                spec["username"] = user.name
                if user.uid:
                    spec["uid"] = user.uid
                if user.groups:
                    spec["groups"] = list(user.groups)
                if user.extra:
                    spec["extra"] = {k: list(v) for k, v in user.extra.items()}
        obj["status"] = {}

    def prepare_for_update(self, rt: ResourceType, new: Obj, old: Obj, subresource: str) -> None:
        incoming = copy.deepcopy(_d(new.get("status")))
        objectmeta.prepare_for_update(rt, new, old, subresource)
        new["spec"] = copy.deepcopy(old.get("spec"))
        old_status = copy.deepcopy(_d(old.get("status")))
        if subresource == "status":
            kept = [c for c in _conditions(old) if c.get("type") in APPROVAL_TYPES]
            added = [c for c in incoming.get("conditions") or [] if not (
                isinstance(c, dict) and c.get("type") in APPROVAL_TYPES)]
            status = incoming
            status["conditions"] = kept + added
        elif subresource == "approval":
            status = old_status
            status["conditions"] = incoming.get("conditions") or []
        else:
            status = old_status
        if not status.get("conditions"):
            status.pop("conditions", None)
        new["status"] = status
        _stamp_conditions(new, old)

    def validate(self, rt: ResourceType, obj: Obj, old: Obj | None = None) -> None:
        validation.validate(rt, obj, old)
        causes = validate_csr(obj, old)
        if causes:
            meta = _d(obj.get("metadata"))
            raise errors.invalid(rt.kind, rt.group, meta.get("name") or meta.get("generateName") or "", causes)


def validate_csr(obj: Obj, old: Obj | None = None) -> list[dict[str, str]]:
    """Field errors of a CSR (create when `old` is None), in upstream's words."""
    causes: list[dict[str, str]] = []
    spec = _d(obj.get("spec"))
    if old is None:
        raw = decode_bytes(spec.get("request"))
        if not spec.get("request"):
            causes.append(vn.required("spec.request"))
        else:
            try:
                pkicsr.parse_csr(raw or b"")
            except ValueError as e:
                causes.append(vn.invalid("spec.request", "<request data>", str(e)))
        signer = spec.get("signerName")
        if not signer:
            causes.append(vn.required("spec.signerName"))
        elif not isinstance(signer, str) or "/" not in signer or signer.startswith("/") or signer.endswith("/"):
            causes.append(vn.invalid("spec.signerName", signer, "must be a fully qualified domain and path of "
                                     "the form 'example.com/signer-name'"))
        usages = spec.get("usages")
        if not usages:
            causes.append(vn.required("spec.usages"))
        else:
            seen: set[str] = set()
            for i, u in enumerate(usages):
                if u not in pkicsr.KNOWN_USAGES:
                    causes.append(vn.not_supported(f"spec.usages[{i}]", u, sorted(pkicsr.KNOWN_USAGES)))
                elif u in seen:
                    causes.append(vn.duplicate(f"spec.usages[{i}]", u))
                seen.add(u)
        expiration = spec.get("expirationSeconds")
        if expiration is not None and (not isinstance(expiration, int) or expiration < 600):
            causes.append(vn.invalid("spec.expirationSeconds", expiration,
                                     "may not specify a duration less than 600 seconds (10 minutes)"))
    causes += _validate_status(obj, old)
    return causes


def _validate_status(obj: Obj, old: Obj | None) -> list[dict[str, str]]:
    causes: list[dict[str, str]] = []
    seen: set[str] = set()
    types = set()
    for i, c in enumerate(_conditions(obj)):
        path = f"status.conditions[{i}]"
        ctype = c.get("type")
        if not ctype:
            causes.append(vn.required(path + ".type"))
            continue
        types.add(ctype)
        status = c.get("status")
        if ctype in TERMINAL_TYPES:
            if ctype in seen:
                causes.append(vn.duplicate(path + ".type", ctype))
            if status != "True":
                causes.append(vn.not_supported(path + ".status", status, ["True"]))
        elif status not in ("True", "False", "Unknown"):
            causes.append(vn.not_supported(path + ".status", status, ["False", "True", "Unknown"]))
        seen.add(ctype)
    if APPROVED in types and DENIED in types:
        causes.append(vn.invalid("status.conditions", _conditions(obj),
                                 "Approved and Denied conditions are mutually exclusive"))
    if old is not None:
        old_types = {c.get("type") for c in _conditions(old)}
        for ctype in TERMINAL_TYPES:
            if ctype in old_types and ctype not in types:
                causes.append(vn.forbidden("status.conditions", f"updates may not remove a condition of type "
                                                                f'"{ctype}"'))
    cert = _d(obj.get("status")).get("certificate")
    old_cert = _d((old or {}).get("status")).get("certificate")
    if cert:
        raw = decode_bytes(cert) or b""
        if b"-----BEGIN CERTIFICATE-----" not in raw:
            causes.append(vn.invalid("status.certificate", "<certificate data>",
                                     "must contain at least one CERTIFICATE PEM block"))
        if old_cert and old_cert != cert:
            causes.append(vn.forbidden("status.certificate", "updates may not modify existing certificate "
                                                             "content"))
    elif old_cert:
        causes.append(vn.forbidden("status.certificate", "updates may not modify existing certificate content"))
    return causes


# ------------------------------------------------------------------------------------------- admission


async def authorized_for_signer(ctx: ApiContext, user: Any, verb: str, signer: str) -> bool:
    """Whether `user` may `verb` the signer `signer` (or every signer of its domain, `<domain>/*`)."""
    authorizer = ctx.authorizer
    if authorizer is None or user is None:
        return True
    names = [signer]
    if "/" in signer:
        names.append(signer.split("/", 1)[0] + "/*")
    for name in names:
        allowed, _ = await authorizer.authorize(user, Attrs(verb, True, GROUP, "v1", "", "signers", "", name))
        if allowed:
            return True
    return False


class CertificateApproval:
    name = "CertificateApproval"

    async def validate(self, ctx: ApiContext, a) -> None:
        if not a.is_(GROUP, RESOURCE) or a.subresource != "approval" or a.op != "UPDATE" or a.user is None:
            return
        signer = _d((a.old or a.obj or {}).get("spec")).get("signerName", "")
        if not await authorized_for_signer(ctx, a.user, "approve", signer):
            raise a.forbidden(f'user not permitted to approve requests with signerName "{signer}"')


class CertificateSigning:
    name = "CertificateSigning"

    async def validate(self, ctx: ApiContext, a) -> None:
        if not a.is_(GROUP, RESOURCE) or a.subresource != "status" or a.op != "UPDATE" or a.user is None:
            return
        old_status, new_status = _d((a.old or {}).get("status")), _d((a.obj or {}).get("status"))
        if (old_status.get("certificate") == new_status.get("certificate")
                and old_status.get("conditions") == new_status.get("conditions")):
            return
        signer = _d((a.old or a.obj or {}).get("spec")).get("signerName", "")
        if not await authorized_for_signer(ctx, a.user, "sign", signer):
            raise a.forbidden(f'user not permitted to sign requests with signerName "{signer}"')


class CertificateSubjectRestriction:
    name = "CertificateSubjectRestriction"

    async def validate(self, ctx: ApiContext, a) -> None:
        if not a.is_(GROUP, RESOURCE) or a.subresource or a.op != "CREATE":
            return
        spec = _d((a.obj or {}).get("spec"))
        if spec.get("signerName") != pkicsr.KUBE_APISERVER_CLIENT:
            return
        try:
            _, orgs = pkicsr.subject(pkicsr.parse_csr(decode_bytes(spec.get("request")) or b""))
        except ValueError:
            return
        if "system:masters" in orgs:
            raise a.forbidden(f"use of {pkicsr.KUBE_APISERVER_CLIENT} signer with system:masters group is not "
                              f"allowed")


# ------------------------------------------------------------------------------------------- wiring


async def approval_handler(ctx: ApiContext, request: web.Request, info: RequestInfo,
                           rt: ResourceType) -> web.StreamResponse:
    """GET / PUT / PATCH of `certificatesigningrequests/<name>/approval`."""
    if info.verb == "get":
        return await rest.get(ctx, request, info, rt)
    if info.verb == "update":
        return await rest.update(ctx, request, info, rt)
    if info.verb == "patch":
        return await patching.patch_resource(ctx, request, info, rt)
    raise errors.method_not_allowed(request.method, rt.kind)


def install(app: web.Application, ctx: ApiContext) -> None:
    """Attach the CSR strategy, route `approval`, and add the certificate admission plugins."""
    rt = ctx.registry.get(GROUP, "v1", RESOURCE)
    if rt is None:
        return
    rt.extra["strategy"] = CSRStrategy()
    handlers = dict(app.get("subresource_handlers", {}))
    handlers[(GROUP, RESOURCE, "approval")] = approval_handler
    app["subresource_handlers"] = handlers
    chain = ctx.admission
    if chain is not None and hasattr(chain, "append"):
        names = set(getattr(chain, "names", ()))
        for plugin in (CertificateApproval(), CertificateSigning(), CertificateSubjectRestriction()):
            if plugin.name not in names:
                chain.append(plugin)
