"""Login sessions: an opaque random id in the cookie, the bearer token only in this process's memory.

A session lives `ttl` seconds after its last use (upstream's --token-ttl; 0: until logout or restart). Every
state-changing form carries the session's CSRF token; the login form carries one from a pre-login cookie
(double submit), so a foreign page can log nobody in nor act for anybody.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field

SESSION_COOKIE = "__Host-kubelite-dashboard"
LOGIN_COOKIE = "__Host-kubelite-dashboard-login"
MAX_SESSIONS = 10_000


@dataclass
class Session:
    id: str
    token: str
    username: str
    groups: list[str]
    csrf: str
    expires: float  # monotonic; 0 = never
    namespace: str = "default"
    flash: list[tuple[str, str]] = field(default_factory=list)  # (kind "ok" | "error", text) shown once


class Sessions:
    def __init__(self, ttl: int = 900, clock=time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._by_id: dict[str, Session] = {}

    def create(self, token: str, username: str, groups: list[str]) -> Session:
        self._purge()
        if len(self._by_id) >= MAX_SESSIONS:  # the oldest give way
            for sid in list(self._by_id)[: len(self._by_id) - MAX_SESSIONS + 1]:
                del self._by_id[sid]
        s = Session(id=secrets.token_urlsafe(32), token=token, username=username, groups=groups,
                    csrf=secrets.token_urlsafe(32), expires=self._deadline())
        self._by_id[s.id] = s
        return s

    def get(self, sid: str | None) -> Session | None:
        """The live session with this id, its lifetime renewed; None when unknown or expired."""
        if not sid:
            return None
        s = self._by_id.get(sid)
        if s is None:
            return None
        if s.expires and self._clock() >= s.expires:
            del self._by_id[sid]
            return None
        s.expires = self._deadline()
        return s

    def drop(self, sid: str | None) -> None:
        if sid:
            self._by_id.pop(sid, None)

    def __len__(self) -> int:
        return len(self._by_id)

    def _deadline(self) -> float:
        return self._clock() + self.ttl if self.ttl > 0 else 0.0

    def _purge(self) -> None:
        now = self._clock()
        for sid in [sid for sid, s in self._by_id.items() if s.expires and now >= s.expires]:
            del self._by_id[sid]


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))
