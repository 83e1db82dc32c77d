"""Who may call the prediction service, and how often: API keys kept as SHA-256 digests, a token
bucket per key, the ASGI middleware that applies both, and the refusal to serve a network
address with no key at all.

A key is never kept in memory as sent or configured: only its digest. A request's key is hashed
and compared with every configured digest in constant time (``hmac.compare_digest``), so neither
the answer nor its timing tells a caller how close a guess came. Nothing here imports BentoML.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import re
import socket
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from churn_transform.serving.guards import answer
from churn_transform.serving.runtime import CLIENT

logger = logging.getLogger(__name__)

#: Paths anyone may read: health checks, the API docs and BentoML's index page.
OPEN_PATHS = frozenset({"/", "/readyz", "/livez", "/healthz", "/docs", "/docs.json"})
OPEN_PREFIXES = ("/static_content/",)
MISSING = "An API key is required: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'."
WRONG = "The API key is not valid."
HOW_TO_SET = (
    "Set KKBOX_API_KEYS (comma-separated name:<sha256 hex of the key>) or KKBOX_API_KEYS_FILE "
    '(one entry a line); make a key and its digest with: python -c "import hashlib, secrets; '
    'k = secrets.token_urlsafe(32); print(k, hashlib.sha256(k.encode()).hexdigest())"'
)
_DIGEST = re.compile(r"[0-9a-f]{64}")
#: Wrong keys one client address may send: a client that lost its key sees its 401s, a guesser
#: is held to about one try a second.
GUESSES_PER_SECOND, GUESS_BURST = 1.0, 10


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class KeyConfigError(ValueError):
    """A configured key entry that would let anyone in (an empty key or digest)."""


@dataclass(frozen=True)
class KeyRing:
    """The configured keys, as name -> SHA-256 digest. An entry is ``name:value`` or a bare
    ``value``; a value of 64 hex digits is a digest, anything else a key hashed here (prefer
    digests: then no key sits in the environment or the secret). A bare entry is named
    ``key-<its digest's first 8 hex digits>``."""

    digests: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def parse(cls, entries: Iterable[str]) -> KeyRing:
        digests: dict[str, bytes] = {}
        for entry in (e.strip() for e in entries):
            if not entry or entry.startswith("#"):
                continue
            name, _, value = entry.rpartition(":")
            value = value.strip()
            if not value:
                # as when the variable holding a digest is unset in compose or Kubernetes: the
                # empty string would become a valid key
                named = name.strip() or entry
                raise KeyConfigError(
                    f"the API key entry {named!r} has no key or digest. {HOW_TO_SET}"
                )
            hashed = bytes.fromhex(value.lower()) if _DIGEST.fullmatch(value.lower()) else None
            hashed = hashed or digest(value)
            digests[name.strip() or f"key-{hashed.hex()[:8]}"] = hashed
        return cls(digests)

    @classmethod
    def load(cls, keys: str | None, keys_file: Path | None) -> KeyRing:
        """The keys of ``KKBOX_API_KEYS`` (comma-separated) and ``KKBOX_API_KEYS_FILE`` (one a
        line, ``#`` comments), together."""
        entries = (keys or "").split(",")
        if keys_file is not None:
            entries += keys_file.read_text(encoding="utf-8").splitlines()
        return cls.parse(entries)

    def name_of(self, key: str) -> str | None:
        """The name of the configured key ``key`` is, or None. Every digest is compared, in
        constant time, whatever matched before."""
        presented, found = digest(key), None
        for name, stored in self.digests.items():
            if hmac.compare_digest(presented, stored):
                found = name
        return found

    def __bool__(self) -> bool:
        return bool(self.digests)


class TokenBucket:
    """Per-name token buckets: ``rate`` requests a second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, when)

    def wait(self, name: str) -> float:
        """0 when ``name`` may go now (a token is taken), else the seconds until it may."""
        now = self.clock()
        tokens = self._tokens(name, now)
        if tokens >= 1:
            self.buckets[name] = (tokens - 1, now)
            return 0.0
        self.buckets[name] = (tokens, now)
        return (1 - tokens) / self.rate

    def waiting(self, name: str) -> float:
        """0 when ``name`` has a token, else the seconds until it has one; nothing is taken."""
        tokens = self._tokens(name, self.clock())
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def _tokens(self, name: str, now: float) -> float:
        """``name``'s tokens at ``now``: what it had, refilled at the rate up to the burst."""
        tokens, then = self.buckets.get(name, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - then) * self.rate)


def presented_key(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The key of ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    for name, value in headers:
        name = name.lower()
        if name == b"x-api-key":
            return value.decode("latin-1").strip() or None
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


class RequireKeys:
    """ASGI middleware: every request but the open paths (health, docs, and ``/metrics`` unless
    ``metrics_need_key``) needs a configured key, else 401; a key over its rate (``rate`` per
    second per worker, ``burst`` at once; 0 is no limit) gets 429 with ``Retry-After``. With no
    key configured everything is open (``refuse_open_bind`` keeps that to loopback).

    Wrong keys are limited per client address (``guesses`` a second, ``guess_burst`` at once):
    an address past them gets 429 for every request that needs a key, its key not even looked
    at, until it has waited, so no one can try keys at the speed of the server."""

    def __init__(
        self,
        app: Any,
        keys: KeyRing,
        metrics_need_key: bool = False,
        rate: float = 0.0,
        burst: int = 1,
        counters: Callable[[], dict[str, Any]] | None = None,
        guesses: float = GUESSES_PER_SECOND,
        guess_burst: int = GUESS_BURST,
    ) -> None:
        self.app, self.keys, self.counters = app, keys, counters
        self.open = OPEN_PATHS if metrics_need_key else OPEN_PATHS | {"/metrics"}
        self.limits = TokenBucket(rate, burst) if rate > 0 else None
        self.guesses = TokenBucket(guesses, guess_burst)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or not self.keys
            or path in self.open
            or path.startswith(OPEN_PREFIXES)
        ):
            return await self.app(scope, receive, send)
        client = (scope.get("client") or ("unknown", 0))[0]
        if blocked := self.guesses.waiting(client):
            self._count("unauthorized", reason="guessing")
            seconds = max(1, math.ceil(blocked))
            message = f"Too many wrong API keys from this address; retry after {seconds} s."
            return await answer(send, 429, message, [(b"retry-after", str(seconds).encode())])
        key = presented_key(scope["headers"])
        name = self.keys.name_of(key) if key is not None else None
        if name is None:
            self._count("unauthorized", reason="missing" if key is None else "wrong")
            if key is not None:
                self.guesses.wait(client)
            challenge = [(b"www-authenticate", b'Bearer realm="kkbox-churn"')]
            return await answer(send, 401, MISSING if key is None else WRONG, challenge)
        wait = self.limits.wait(name) if self.limits else 0.0
        if wait:
            self._count("limited", key=name)
            seconds = max(1, math.ceil(wait))
            message = f"Too many requests for key {name!r}; retry after {seconds} s."
            return await answer(send, 429, message, [(b"retry-after", str(seconds).encode())])
        given = CLIENT.set(name)  # the traffic log says which key each prediction came with
        try:
            await self.app(scope, receive, send)
        finally:
            CLIENT.reset(given)

    def _count(self, counter: str, **labels: str) -> None:
        if self.counters is not None:
            self.counters()[counter].labels(**labels).inc()


def listening_address(argv: Sequence[str] = sys.argv) -> str | None:
    """The address this process's server socket is bound to: BentoML's worker gets the socket
    its arbiter bound as ``--fd N`` (whatever ``--host`` or ``BENTOML_HOST`` said). None outside
    ``bentoml serve``."""
    try:
        fd = int(argv[list(argv).index("--fd") + 1])
    except (ValueError, IndexError):
        return None
    bound = socket.socket(fileno=fd)
    try:
        return str(bound.getsockname()[0])
    finally:
        bound.detach()  # the socket is uvicorn's: look, do not close


def command_line_host() -> str | None:
    """The address ``bentoml serve`` was told to bind (``--host`` or ``BENTOML_HOST``), read from
    its click context in the arbiter before it binds; BentoML's default, ``0.0.0.0``, when
    neither was given; None outside that command (``bentoml.serve()`` from Python)."""
    import click

    context = click.get_current_context(silent=True)
    if context is None or "host" not in context.params:
        return None
    return context.params["host"] or "0.0.0.0"


def refuse_open_bind(keys: KeyRing, address: str | None, announce: bool = True) -> None:
    """Stop a service bound to a non-loopback ``address`` with no key: it would answer anyone.
    With ``announce``, says whether the API is open (no key, loopback) or how many keys it
    knows."""
    if keys:
        if announce:
            names = ", ".join(keys.digests)
            logger.info("API keys required: %d configured (%s)", len(keys.digests), names)
        return
    if address is not None and not is_loopback(address):
        raise SystemExit(f"Refusing to serve {address} with no API key configured. {HOW_TO_SET}")
    if announce:
        logger.warning("No API key configured: the API is open to anyone who can reach %s", address)


def is_loopback(host: str) -> bool:
    """Whether ``host``, an address or a name (``localhost``), reaches only this machine: every
    address the name resolves to is a loopback one. A name that does not resolve is not."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        return False
    return bool(found) and all(ipaddress.ip_address(a[4][0]).is_loopback for a in found)
