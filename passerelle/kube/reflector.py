"""One collection kept in memory by list + watch, following the API's rules.

List (a page at a time) and keep the list's resourceVersion; watch from it with bookmarks, so
the version moves on even when nothing the watch selects changes; when the server ends a watch
(timeoutSeconds) watch again from the last version, without listing. 410 Gone, on a watch or a
list, means the version was compacted: list again, and swap the whole collection in at once, so
nobody ever sees a half-listed one. Any other failure is retried with jittered exponential
backoff, reset by the next success, and reported to the shared `Health` (which logs transitions,
not every retry). List items carry no kind/apiVersion on the wire; they are filled in here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from passerelle.backoff import Backoff
from passerelle.kube.client import ApiClient, ApiStatusError, Gone, KubeError, Obj
from passerelle.kube.kinds import Kind

log = logging.getLogger("passerelle.kubernetes")

LOG_AGAIN = 600.0  # seconds before the same API error is logged again


@dataclass(slots=True)
class Health:
    """The provider's view of the API, for logs, /api and metrics.

    connected: the last request answered (False until the first one has).
    last_error: the last failure, phrased for the operator ("" when none yet).
    errors_total: failed requests and broken watches since start.
    relists_total: lists forced by 410 Gone.
    synced: every kind has been listed once (the first configuration is out).
    """

    server: str = ""
    connected: bool = False
    last_error: str = ""
    errors_total: int = 0
    relists_total: int = 0
    synced: bool = False
    _down_logged: bool = field(default=False, repr=False)
    _logged: dict[str, float] = field(default_factory=dict, repr=False)  # error -> when logged

    def failed(self, what: str, error: Exception, retry_in: float) -> None:
        """Count a failure; log it unless the same error was logged in the last LOG_AGAIN
        seconds (every reflector meets the same 401 or refused connection)."""
        self.errors_total += 1
        message = f"{what}: {error}"
        now = time.monotonic()
        if now - self._logged.get(str(error), -LOG_AGAIN) >= LOG_AGAIN:
            keeps = "the last good configuration keeps serving" if self.synced else "no configuration yet"
            log.warning("Kubernetes API %s: %s; retrying in %.1fs, %s", self.server, message, retry_in, keeps)
            self._logged[str(error)] = now
            self._down_logged = True
        self.last_error = message
        self.connected = False

    def succeeded(self) -> None:
        if self._down_logged:
            log.info("Kubernetes API %s answers again", self.server)
            self._down_logged = False
            # an outage ended: its errors are news again next time; a refusal (403) stays known
            self._logged = {k: t for k, t in self._logged.items() if k.startswith("403 ")}
        self.connected = True


class Reflector:
    def __init__(
        self,
        client: ApiClient,
        kind: Kind,
        *,
        health: Health,
        on_change: Callable[[], None],
        namespace: str = "",
        name: str = "",
        label_selector: str = "",
        backoff: Backoff = Backoff(),
        watch_seconds: tuple[int, int] = (300, 600),
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.kind = kind
        self.objects: dict[tuple[str, str], Obj] = {}
        self.synced = asyncio.Event()
        self.resource_version = ""
        self.version = 0  # bumped whenever `objects` changes (the provider's per-part cache)
        self._client = client
        self._health = health
        self._on_change = on_change
        self._path = kind.path(namespace)
        self._params = kind.params(label_selector, name)
        self._backoff = backoff
        self._watch_seconds = watch_seconds
        self._draw = draw
        self._watched = False
        self._what = f"{kind.kind} {'/'.join(p for p in (namespace, name) if p) or 'list'}".rstrip()

    async def run(self) -> None:
        attempt = gone = 0
        while True:
            try:
                if not self.resource_version:
                    await self._list()
                    attempt = 0
                loop = asyncio.get_running_loop()
                started, self._watched = loop.time(), False
                await self._watch()
                if not self._watched and loop.time() - started < 1.0:
                    # ended at once with nothing (a proxy cutting streams?): do not spin on it
                    await asyncio.sleep(self._backoff.delay(attempt, self._draw()))
                    attempt += 1
                    continue
                attempt = gone = 0
            except Gone:
                self._health.relists_total += 1
                log.info(
                    "%s: resourceVersion %s expired (410 Gone); listing again",
                    self._what,
                    self.resource_version,
                )
                self.resource_version = ""
                gone = 1 if self._watched else gone + 1
                if gone > 1:  # 410 again right after a list: do not spin
                    await asyncio.sleep(self._backoff.delay(gone - 2, self._draw()))
            except KubeError as e:
                delay = self._backoff.delay(attempt, self._draw())
                self._health.failed(f"{self._what}", e, delay)
                if (
                    self.kind.crd
                    and isinstance(e, ApiStatusError)
                    and e.code == 403
                    and not self.synced.is_set()
                ):
                    # An optional kind this account may not read must not hold every other
                    # kind's configuration back: served without it, retried meanwhile.
                    log.error(
                        "%s: forbidden; serving without these objects until RBAC allows list/watch",
                        self._what,
                    )
                    self.synced.set()
                    self._on_change()
                attempt += 1
                await asyncio.sleep(delay)
            except Exception as e:  # a bug or an answer nobody expected: never the whole router's end
                log.exception("%s: unexpected error; retrying", self._what)
                delay = self._backoff.delay(attempt, self._draw())
                self._health.failed(self._what, e, delay)
                attempt += 1
                await asyncio.sleep(delay)

    async def prime(self) -> None:
        """List now, for a caller that needs the collection before `run()` (which then watches
        from this list's version). A failure raises the KubeError; `run()` lists again then."""
        await self._list()

    async def _list(self) -> None:
        items, rv = await self._client.list(self._path, self._params)
        self._watched = False  # no watch event since this list yet
        self._health.succeeded()
        fresh = {}
        for item in items:
            item["kind"], item["apiVersion"] = self.kind.kind, self.kind.api_version
            meta = item.get("metadata") or {}
            key = (meta.get("namespace") or "", meta.get("name") or "")
            previous = self.objects.get(key)
            # the very same dict when unchanged, so translation's per-object memo still holds
            same = previous is not None and (previous.get("metadata") or {}).get(
                "resourceVersion"
            ) == meta.get("resourceVersion")
            fresh[key] = previous if same and previous is not None else item
        changed = fresh.keys() != self.objects.keys() or any(
            fresh[k] is not self.objects.get(k) for k in fresh
        )
        self.objects = fresh
        self.version += changed
        self.resource_version = rv
        log.debug("%s: %d listed at resourceVersion %s", self._what, len(fresh), rv)
        first = not self.synced.is_set()
        self.synced.set()
        if changed or first:
            self._on_change()

    async def _watch(self) -> None:
        low, high = self._watch_seconds
        seconds = low + int((high - low) * self._draw())
        params = {
            **self._params,
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(seconds),
        }
        # aclosing: a cancelled watch closes its connection now, not when the generator is collected
        async with contextlib.aclosing(
            self._client.watch(self._path, params, timeout=seconds + 30)
        ) as events:
            async for event in events:
                self._health.succeeded()
                self._watched = True
                kind, obj = event.get("type"), event.get("object") or {}
                meta = obj.get("metadata") or {}
                if meta.get("resourceVersion"):
                    self.resource_version = str(meta["resourceVersion"])
                if kind == "BOOKMARK":
                    continue
                key = (meta.get("namespace") or "", meta.get("name") or "")
                if kind in ("ADDED", "MODIFIED"):
                    obj.setdefault("kind", self.kind.kind)
                    obj.setdefault("apiVersion", self.kind.api_version)
                    self.objects[key] = obj
                elif kind == "DELETED":
                    self.objects.pop(key, None)
                else:
                    continue
                self.version += 1
                self._on_change()
