"""Guards of `rag serve` that Gradio does not give: a growing wait after failed sign-ins
(``--auth``), conversation exports that only the person who made them can download, and, without
``--auth``, a browser identity so that each browser keeps its own conversations.

``LoginThrottle`` counts failed sign-ins per (client address, user name): the first
``FREE_TRIES`` cost nothing, each one after that locks that pair for twice as long as the last,
up to ``MAX_WAIT_S``; a success clears it. Keyed by pair, so someone guessing one person's
password neither slows everyone else nor locks that person out from their own address.

``BrowserCookieMiddleware`` gives a browser that opens the page without one a random, HttpOnly
cookie (``BROWSER_COOKIE``); ``owner`` turns a request into whose conversations it sees: the
signed-in user, everyone ("") when conversations are shared, else that browser.

``ExportFiles`` keeps exports in ``<index folder>/exports/<owner>/`` (folders 0700, files 0600),
each file named with a tag derived from its owner's name and a key made at start; a request for
a file so named is served only to that owner.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

FREE_TRIES = 5
MAX_WAIT_S = 300.0
MAX_LOGIN_BODY = 64_000

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class _Record:
    failures: int = 0
    locked_until: float = 0.0


class LoginThrottle:
    """Thread-safe; ``clock`` is injectable so that tests need not wait."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._records: dict[tuple[str, str], _Record] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def wait_s(self, client: str, user: str) -> float:
        """Seconds before this pair may try again (0: now)."""
        with self._lock:
            record = self._records.get((client, user))
            return max(0.0, record.locked_until - self._clock()) if record else 0.0

    def failed(self, client: str, user: str) -> None:
        with self._lock:
            if len(self._records) > 10_000:  # bounded memory: forget the pairs no longer locked
                now = self._clock()
                self._records = {k: r for k, r in self._records.items() if r.locked_until > now}
            record = self._records.setdefault((client, user), _Record())
            record.failures += 1
            if record.failures > FREE_TRIES:
                wait = min(MAX_WAIT_S, 2.0 ** (record.failures - FREE_TRIES - 1))
                record.locked_until = self._clock() + wait

    def succeeded(self, client: str, user: str) -> None:
        with self._lock:
            self._records.pop((client, user), None)

    def refusal(self, client: str, user: str) -> tuple[str, int] | None:
        """For a pair that must wait: the message and the whole seconds to wait; else None."""
        wait = math.ceil(self.wait_s(client, user))
        if not wait:
            return None
        return f"Too many failed sign-ins for {user!r}; try again in {wait} s.", wait


class LoginThrottleMiddleware:
    """ASGI middleware in front of Gradio's ``POST /login``: refuses a locked pair with 429 before
    the password is looked at, and records whether each attempt succeeded."""

    def __init__(self, app: ASGIApp, throttle: LoginThrottle) -> None:
        self.app = app
        self.throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].rstrip("/") != "/login":
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False) and len(body) <= MAX_LOGIN_BODY
        user = (parse_qs(body[:MAX_LOGIN_BODY].decode("utf-8", "replace")).get("username") or [""])[0].strip()
        client = (scope.get("client") or ("?", 0))[0]
        refusal = self.throttle.refusal(client, user)
        if refusal:
            said, wait = refusal
            await _json(send, 429, {"detail": said}, [(b"retry-after", str(wait).encode())])
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if status == 200:
                    self.throttle.succeeded(client, user)
                elif status in (400, 401, 403):
                    self.throttle.failed(client, user)
            await send(message)

        await self.app(scope, replay, watch)


async def _json(send: Send, status: int, payload: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    import json

    data = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            *headers]})  # fmt: skip
    await send({"type": "http.response.body", "body": data})


# --- exports -----------------------------------------------------------------------------------

_TAGGED = re.compile(r"\.rx-([0-9a-f]{16})\.(?:md|json)$")


class ExportFiles:
    """Where exports are written, and who may download each."""

    def __init__(self, folder: Path, key: bytes | None = None) -> None:
        self.folder = folder
        self._key = key or secrets.token_bytes(32)

    def tag(self, user: str) -> str:
        return hmac.new(self._key, user.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:16]

    def folder_for(self, user: str) -> Path:
        """The user's own folder, made owner-only (the index folder may be readable by others)."""
        folder = self.folder / self.tag(user)
        folder.mkdir(parents=True, exist_ok=True)
        for made in (self.folder, folder):
            os.chmod(made, 0o700)
        return folder

    def marker(self, user: str) -> str:
        """What goes between an export's name and its suffix, naming its owner (``_TAGGED``)."""
        return f".rx-{self.tag(user)}"

    def may_read(self, path: str, user: str) -> bool:
        """Whether ``user`` may download the file at ``path``: anyone for a file that is not an
        export, only its owner for one."""
        found = _TAGGED.search(unquote(path))
        return found is None or hmac.compare_digest(found.group(1), self.tag(user))


class ExportOwnerMiddleware:
    """ASGI middleware in front of Gradio's file route: an export is served to its owner only.
    ``user_of`` tells who a request's session belongs to ('' without --auth)."""

    def __init__(self, app: ASGIApp, exports: ExportFiles, user_of: Callable[[Scope], str | None]) -> None:
        self.app = app
        self.exports = exports
        self.user_of = user_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if "/file=" in path and _TAGGED.search(unquote(path)):
            user = self.user_of(scope)
            if user is None or not self.exports.may_read(path, user):
                await _json(send, 404, {"detail": "Not found."}, [])
                return
        await self.app(scope, receive, send)


# --- browsers ----------------------------------------------------------------------------------

BROWSER_COOKIE = "rag-browser"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{22,64}")
_BROWSER_DAYS = 400  # the longest a browser keeps a cookie (Chromium caps Max-Age there)


def browser_of(cookies: dict[str, str]) -> str | None:
    """The browser's identity from its cookie, or None without a well-formed one."""
    token = cookies.get(BROWSER_COOKIE, "")
    return f"browser:{token}" if _TOKEN.fullmatch(token) else None


def owner(username: str | None, cookies: dict[str, str], session: str | None, shared: bool) -> str:
    """Whose conversations a request sees: the signed-in user (--auth); "" (everyone's one
    list) when conversations are shared; else the browser's own, or, for a client without the
    cookie, this page load's own (never the shared list)."""
    if username:
        return username
    if shared:
        return ""
    return browser_of(cookies) or f"session:{session or secrets.token_urlsafe(16)}"


class BrowserCookieMiddleware:
    """ASGI middleware: the page, opened by a browser without the cookie, sets it. Only the page
    (GET /): the browser has the cookie before the page's scripts ask for anything else."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET" or scope.get("path") not in ("", "/"):
            await self.app(scope, receive, send)
            return
        cookies = _cookies(scope)
        if browser_of(cookies) is not None:
            await self.app(scope, receive, send)
            return
        value = (f"{BROWSER_COOKIE}={secrets.token_urlsafe(24)}; Path=/; Max-Age={_BROWSER_DAYS * 86400}; "
                 "HttpOnly; SameSite=Lax")  # fmt: skip

        async def with_cookie(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", value.encode())]}
            await send(message)

        await self.app(scope, receive, with_cookie)


def _cookies(scope: Scope) -> dict[str, str]:
    from starlette.requests import HTTPConnection

    return dict(HTTPConnection(scope).cookies)
