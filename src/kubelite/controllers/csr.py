"""CertificateSigningRequest controllers, as upstream's pkg/controller/certificates:

- approving (csrapproving): a kubelet client CSR (signer `kubernetes.io/kube-apiserver-client-kubelet`,
  O=system:nodes, CN=system:node:<name>, client usages, no SANs) is approved when a SubjectAccessReview says
  its requester may `create certificatesigningrequests/selfnodeclient` (renewing its own certificate) or
  `…/nodeclient` (a bootstrap token joining a node). Anything else is left for a human
  (`kubectl certificate approve|deny`).
- signing (csrsigning): approved CSRs for `kubernetes.io/kube-apiserver-client`,
  `…/kube-apiserver-client-kubelet` and `kubernetes.io/kubelet-serving` are signed with the cluster CA
  (`--cluster-signing-cert-file/-key-file`), after the signer's own checks; a request that fails them gets a
  `Failed` condition (reason SignerValidationFailure).
- cleaner (csrcleaner): approved/denied/failed CSRs go after an hour, pending ones after a day, issued ones
  once their certificate has expired.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import logging
import os
from typing import Any

from cryptography import x509

from kubelite.api.timefmt import now_rfc3339, parse_rfc3339
from kubelite.client import ClientError
from kubelite.pki import certs
from kubelite.pki import csr as pkicsr

from .manager import Controller, ControllerContext

log = logging.getLogger("kubelite.controllers.csr")

Obj = dict[str, Any]
GROUP = "certificates.k8s.io"


def _conditions(csr: Obj) -> list[Obj]:
    return list((csr.get("status") or {}).get("conditions") or [])


def has_condition(csr: Obj, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status", "True") == "True" for c in _conditions(csr))


def is_approved(csr: Obj) -> bool:
    return has_condition(csr, "Approved") and not has_condition(csr, "Denied")


def request_of(csr: Obj) -> x509.CertificateSigningRequest:
    """The parsed spec.request; ValueError when it cannot be read."""
    raw = (csr.get("spec") or {}).get("request") or ""
    return pkicsr.parse_csr(base64.b64decode(raw))


class _CSRController(Controller):
    service_account = "certificate-controller"

    def __init__(self, ctx: ControllerContext, workers: int = 5) -> None:
        super().__init__(ctx, workers=workers)
        self.csr_rt = ctx.rt(GROUP, "v1", "certificatesigningrequests")
        self.csrs = self.informer(self.csr_rt)
        self.csrs.add_handler(self.enqueue, self.enqueue_update, None)


# ------------------------------------------------------------------------------------------ approving

# (subresource the requester needs, approval message)
SELF_NODE_CLIENT = ("selfnodeclient", "Auto approving self kubelet client certificate after SubjectAccessReview.")
NODE_CLIENT = ("nodeclient", "Auto approving kubelet client certificate after SubjectAccessReview.")


def recognize(csr: Obj, request: x509.CertificateSigningRequest) -> list[tuple[str, str]]:
    """The auto-approval permissions that could apply to this CSR, most specific first."""
    spec = csr.get("spec") or {}
    if spec.get("signerName") != pkicsr.KUBE_APISERVER_CLIENT_KUBELET:
        return []
    if pkicsr.kubelet_client_problem(request, spec.get("usages") or []):
        return []
    cn, _ = pkicsr.subject(request)
    out = []
    if spec.get("username") == cn:
        out.append(SELF_NODE_CLIENT)
    out.append(NODE_CLIENT)
    return out


class CSRApprovingController(_CSRController):
    name = "certificatesigningrequest-approving-controller"
    aliases = ("csrapproving",)
    event_component = "csrapproving"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.sar_rt = ctx.rt("authorization.k8s.io", "v1", "subjectaccessreviews")

    async def _allowed(self, csr: Obj, subresource: str) -> bool:
        spec = csr.get("spec") or {}
        review_spec: Obj = {"user": spec.get("username", ""), "groups": list(spec.get("groups") or []),
                            "resourceAttributes": {"group": GROUP, "resource": "certificatesigningrequests",
                                                   "verb": "create", "subresource": subresource}}
        if spec.get("uid"):
            review_spec["uid"] = spec["uid"]
        if spec.get("extra"):
            review_spec["extra"] = spec["extra"]
        review = await self.client.create(self.sar_rt, {"apiVersion": "authorization.k8s.io/v1",
                                                        "kind": "SubjectAccessReview", "spec": review_spec})
        return bool((review.get("status") or {}).get("allowed"))

    async def sync(self, key: str) -> None:
        csr = self.csrs.get_by_key(key)
        if csr is None or (csr.get("status") or {}).get("certificate"):
            return
        if has_condition(csr, "Approved") or has_condition(csr, "Denied"):
            return
        try:
            request = request_of(csr)
        except ValueError as e:
            log.info("csrapproving: cannot parse csr %s: %s", key, e)
            return
        tried = []
        for subresource, message in recognize(csr, request):
            tried.append(subresource)
            if not await self._allowed(csr, subresource):
                continue
            approved = copy.deepcopy(csr)
            approved.setdefault("status", {}).setdefault("conditions", []).append({
                "type": "Approved", "status": "True", "reason": "AutoApproved", "message": message,
                "lastUpdateTime": now_rfc3339()})
            await self.client.update(self.csr_rt, approved, subresource="approval")
            return
        if tried:
            log.info('csrapproving: recognized csr "%s" as [%s] but subject access review was not approved', key,
                     " ".join(tried))


# ------------------------------------------------------------------------------------------ signing


class _CA:
    """The signing CA from files, re-read when they change (upstream's dynamic cert reloader)."""

    def __init__(self, cert_file: str | None, key_file: str | None) -> None:
        self.cert_file, self.key_file = cert_file, key_file
        self._stamp: tuple[float, float] | None = None
        self.cert: x509.Certificate | None = None
        self.key = None

    def load(self) -> bool:
        if not self.cert_file or not self.key_file:
            return False
        try:
            stamp = (os.stat(self.cert_file).st_mtime, os.stat(self.key_file).st_mtime)
            if stamp != self._stamp:
                with open(self.cert_file, "rb") as f:
                    cert = certs.load_cert(f.read())
                with open(self.key_file, "rb") as f:
                    key = certs.load_key(f.read())
                self.cert, self.key, self._stamp = cert, key, stamp
        except (OSError, ValueError) as e:
            log.warning("csrsigning: cannot load the signing CA (%s, %s): %s", self.cert_file, self.key_file, e)
            return self.cert is not None
        return True


class CSRSigningController(_CSRController):
    name = "certificatesigningrequest-signing-controller"
    aliases = ("csrsigning",)
    event_component = "csrsigning"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.ca = _CA(ctx.config.cluster_signing_cert_file, ctx.config.cluster_signing_key_file)
        self.max_duration = dt.timedelta(seconds=ctx.config.cluster_signing_duration)

    async def start(self) -> None:
        if not self.ca.load():
            log.warning("csrsigning: no signing CA configured (--cluster-signing-cert-file/-key-file); approved "
                        "CSRs stay unsigned")

    async def sync(self, key: str) -> None:
        csr = self.csrs.get_by_key(key)
        if csr is None or not is_approved(csr) or has_condition(csr, "Failed"):
            return
        spec = csr.get("spec") or {}
        signer = spec.get("signerName")
        check = pkicsr.SIGNER_CHECKS.get(signer or "")
        if check is None or (csr.get("status") or {}).get("certificate"):
            return
        if not self.ca.load() or self.ca.cert is None:
            return
        updated = copy.deepcopy(csr)
        status = updated.setdefault("status", {})
        try:
            request = request_of(csr)
        except ValueError as e:
            raise ValueError(f'unable to parse csr "{key}": {e}') from None
        problem = check(request, spec.get("usages") or [])
        if problem:
            status.setdefault("conditions", []).append({
                "type": "Failed", "status": "True", "reason": "SignerValidationFailure", "message": problem,
                "lastUpdateTime": now_rfc3339()})
        else:
            duration = pkicsr.signing_duration(spec.get("expirationSeconds"), self.max_duration)
            pem = pkicsr.sign_csr(self.ca.cert, self.ca.key, request, spec.get("usages") or [], duration)
            status["certificate"] = base64.b64encode(pem).decode()
        await self.client.update_status(self.csr_rt, updated)


# ------------------------------------------------------------------------------------------ cleaner

APPROVED_EXPIRATION = 3600.0
DENIED_EXPIRATION = 3600.0
FAILED_EXPIRATION = 3600.0
PENDING_EXPIRATION = 24 * 3600.0


def _condition_time(csr: Obj, ctype: str) -> dt.datetime | None:
    for c in _conditions(csr):
        if c.get("type") == ctype:
            return parse_rfc3339(c.get("lastUpdateTime") or c.get("lastTransitionTime"))
    return None


def is_stale(csr: Obj, now: dt.datetime) -> bool:
    """Whether the cleaner deletes this CSR now."""
    def older(when: dt.datetime | None, seconds: float) -> bool:
        return when is not None and (now - when).total_seconds() > seconds

    cert = (csr.get("status") or {}).get("certificate")
    if cert:
        try:
            issued = certs.load_cert(base64.b64decode(cert))
            if issued.not_valid_after_utc < now:
                return True
        except ValueError:
            pass
    if has_condition(csr, "Approved") and older(_condition_time(csr, "Approved"), APPROVED_EXPIRATION):
        return True
    if has_condition(csr, "Denied") and older(_condition_time(csr, "Denied"), DENIED_EXPIRATION):
        return True
    if has_condition(csr, "Failed") and older(_condition_time(csr, "Failed"), FAILED_EXPIRATION):
        return True
    if not _conditions(csr):
        created = parse_rfc3339((csr.get("metadata") or {}).get("creationTimestamp"))
        return older(created, PENDING_EXPIRATION)
    return False


class CSRCleanerController(_CSRController):
    name = "certificatesigningrequest-cleaner-controller"
    aliases = ("csrcleaner",)
    event_component = "csrcleaner"
    service_account = "certificate-controller"
    poll_interval = 60.0

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx, workers=1)

    async def start(self) -> None:
        self.run_periodic(self._resync, self.poll_interval)

    async def _resync(self) -> None:
        for csr in self.csrs.list():
            self.enqueue(csr)

    async def sync(self, key: str) -> None:
        csr = self.csrs.get_by_key(key)
        if csr is None or not is_stale(csr, dt.datetime.now(dt.UTC)):
            return
        try:
            await self.client.delete(self.csr_rt, None, csr["metadata"]["name"],
                                     preconditions={"uid": csr["metadata"].get("uid", "")})
        except ClientError as e:
            if not (e.is_not_found or e.is_conflict):
                raise
