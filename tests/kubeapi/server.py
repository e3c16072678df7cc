"""The test API server's HTTP handlers, and `KubeAPI`, the handle a test holds.

`KubeAPI` runs the server on an event loop in a thread of its own, so a synchronous test (or the
passerelle process it started) and an async one can both use it; every method is thread-safe.
`stop()` closes the listener and every connection, open watches included, and keeps the objects,
as an API server restarting in front of etcd would; `start()` listens on the same port again.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import trustme
import yaml

from tests.kubeapi import resources, wire
from tests.kubeapi.resources import Resource
from tests.kubeapi.selectors import SelectorError, field_selector, label_selector
from tests.kubeapi.store import ApiError, Obj, Store, Watch, gone

T = TypeVar("T")
Rule = dict[str, list[str]]  # an RBAC PolicyRule: apiGroups, resources, verbs[, resourceNames]


@dataclass(frozen=True, slots=True)
class Request:
    """One request as the server saw it, for tests to assert on."""

    method: str
    path: str
    query: str
    user: str  # "" when not authenticated
    verb: str  # RBAC verb: get, list, watch, create, update, patch, delete; "" for discovery
    resource: str  # "ingresses", "ingresses/status", ...; "" for discovery
    status: int


@dataclass(slots=True)
class _Injected:
    code: int
    times: int
    verb: str | None
    resource: str | None


class KubeAPI:
    """A Kubernetes API server for one test.

    tokens: bearer token -> user name. With `tls`, client certificates from `client_cert()` are
        accepted too (user = CN, groups = O, as the real server reads them).
    rules: user -> RBAC PolicyRules; None allows every authenticated user everything.
    crds: API groups whose CRDs are installed (see resources.CRDS).
    bookmark_interval: seconds between BOOKMARK events on watches that allow them.
    """

    def __init__(
        self,
        *,
        tls: bool = False,
        tokens: dict[str, str] | None = None,
        rules: dict[str, list[Rule]] | None = None,
        crds: frozenset[str] | set[str] = frozenset(),
        bookmark_interval: float = 1.0,
    ) -> None:
        self.tokens = dict(tokens if tokens is not None else {"test-token": "tester"})
        self.rules = rules
        self.bookmark_interval = bookmark_interval
        self._resources = resources.served(frozenset(crds))
        self._by_path = {(r.api_version, r.plural): r for r in self._resources}
        self._by_kind = {(r.api_version, r.kind): r for r in self._resources}
        self.store = Store(self._resources)
        self.ca = trustme.CA(organization_name="test cluster CA") if tls else None
        self._ssl: ssl.SSLContext | None = None
        if self.ca is not None:
            self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(self._ssl)
            self.ca.configure_trust(self._ssl)
            self._ssl.verify_mode = ssl.CERT_OPTIONAL
        self.log: list[Request] = []
        self._injected: list[_Injected] = []
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.StreamWriter, asyncio.Task[None]] = {}
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="kubeapi")
        self._thread.start()

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{'https' if self.ca else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> KubeAPI:
        async def listen() -> None:
            self._server = await asyncio.start_server(
                self._serve, "127.0.0.1", self.port, ssl=self._ssl, reuse_address=True
            )
            self.port = self._server.sockets[0].getsockname()[1]

        self._call(listen())
        return self

    def stop(self) -> None:
        """Close the listener and every connection (watch streams end without a final chunk)."""

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            tasks = list(self._connections.values())
            for writer, task in list(self._connections.items()):
                writer.transport.abort()
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._connections.clear()
            if self._server is not None:
                await self._server.wait_closed()
                self._server = None

        self._call(close())

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def _run(self, fn: Callable[[], T]) -> T:
        async def call() -> T:
            return fn()

        return self._call(call())

    # -- what tests do ---------------------------------------------------------------------------
    def resource(self, api_version: str, kind: str) -> Resource:
        return self._by_kind[(api_version, kind)]

    def create(self, obj: Obj) -> Obj:
        r = self.resource(obj["apiVersion"], obj["kind"])
        return self._run(lambda: self.store.create(r, _ns(r, obj), obj))

    def replace(self, obj: Obj, *, status: bool = False) -> Obj:
        r = self.resource(obj["apiVersion"], obj["kind"])
        return self._run(
            lambda: self.store.replace(r, _ns(r, obj), obj["metadata"]["name"], obj, status=status)
        )

    def apply(self, obj: Obj) -> Obj:
        """Create, or replace unconditionally (what `kubectl apply` amounts to here)."""
        r = self.resource(obj["apiVersion"], obj["kind"])
        ns, name = _ns(r, obj), obj["metadata"]["name"]

        def write() -> Obj:
            if (r.qualified, ns, name) in self.store.objects:
                body = {
                    **obj,
                    "metadata": {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"},
                }
                return self.store.replace(r, ns, name, body)
            return self.store.create(r, ns, obj)

        return self._run(write)

    def patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: Obj, *, status: bool = False
    ) -> Obj:
        r = self.resource(api_version, kind)
        return self._run(lambda: self.store.patch(r, namespace, name, patch, status=status))

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> Obj:
        r = self.resource(api_version, kind)
        return self._run(lambda: self.store.delete(r, namespace, name))

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Obj | None:
        r = self.resource(api_version, kind)

        def read() -> Obj | None:
            try:
                return self.store.get(r, namespace, name)
            except ApiError:
                return None

        return self._run(read)

    def objects(self, api_version: str, kind: str) -> list[Obj]:
        r = self.resource(api_version, kind)
        return self._run(lambda: self.store.list(r, "", lambda o: True, lambda o: True)[0])

    def expire(self, *, close_watches: bool = True) -> None:
        """Compact the history; open watches get an ERROR event with a 410 Status and end."""

        def compact() -> None:
            self.store.expire()
            if close_watches:
                for watch in list(self.store.watches):
                    watch.queue.put_nowait(
                        ("ERROR", gone(f"too old resource version: {self.store.rv}").status())
                    )
                    watch.queue.put_nowait(None)

        self._run(compact)

    def inject(
        self, code: int, *, times: int = 1, verb: str | None = None, resource: str | None = None
    ) -> None:
        """The next `times` matching requests are answered with `code` and a Status."""
        self._run(lambda: self._injected.append(_Injected(code, times, verb, resource)))

    def watches(self) -> int:
        return self._run(lambda: len(self.store.watches))

    def requests(self) -> list[Request]:
        return self._run(lambda: list(self.log))

    def client_cert(self, user: str, *groups: str) -> trustme.LeafCert:
        assert self.ca is not None, "client certificates need KubeAPI(tls=True)"
        return self.ca.issue_cert("client.test", common_name=user, organization_name=",".join(groups) or None)

    def kubeconfig(
        self, path: Path, *, token: str | None = "test-token", cert: trustme.LeafCert | None = None
    ) -> Path:
        """Write a kubeconfig for this server; with `cert`, PEM files beside it."""
        cluster: dict[str, Any] = {"server": self.url}
        user: dict[str, Any] = {}
        if self.ca is not None:
            ca_file = path.with_suffix(".ca.pem")
            self.ca.cert_pem.write_to_path(str(ca_file))
            cluster["certificate-authority"] = str(ca_file)
        if token is not None:
            user["token"] = token
        if cert is not None:
            cert_file, key_file = path.with_suffix(".crt.pem"), path.with_suffix(".key.pem")
            cert.cert_chain_pems[0].write_to_path(str(cert_file))
            cert.private_key_pem.write_to_path(str(key_file))
            user.update({"client-certificate": str(cert_file), "client-key": str(key_file)})
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": cluster}],
            "users": [{"name": "test", "user": user}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
            "current-context": "test",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    # -- HTTP ------------------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[writer] = task
        try:
            while True:
                request = await wire.read_request(reader)
                if request is None:
                    break
                await self._handle(request, writer)
                await writer.drain()
                if not request.keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError, asyncio.CancelledError):
            pass  # the client went away, or stop() cut the connection
        finally:
            self._connections.pop(writer, None)
            writer.close()

    async def _handle(self, request: wire.HttpRequest, writer: asyncio.StreamWriter) -> None:
        user, verb, resource = "", "", ""
        status = 200
        try:
            user = self._authenticate(request, writer)
            route = self._route(request)
            if isinstance(route, dict):  # discovery
                wire.write_json(writer, 200, route)
                return
            r, namespace, name, sub = route
            verb = _verb(request, name)
            resource = f"{r.plural}/{sub}" if sub else r.plural
            self._authorize(user, verb, r, resource, namespace, name)
            self._maybe_fail(verb, resource)
            if verb == "watch":
                await self._watch(request, writer, r, namespace, name)
                return
            status, answer = self._answer(request, verb, r, namespace, name, sub)
            wire.write_json(writer, status, answer)
        except ApiError as e:
            status = e.code
            wire.write_json(writer, e.code, e.status())
        finally:
            self.log.append(
                Request(request.method, request.path, request.raw_query, user, verb, resource, status)
            )

    def _authenticate(self, request: wire.HttpRequest, writer: asyncio.StreamWriter) -> str:
        auth = request.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            user = self.tokens.get(auth.removeprefix("Bearer ").strip())
            if user is None:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            return user
        peer = writer.get_extra_info("peercert")
        if peer:
            for rdn in peer.get("subject", ()):
                for name, value in rdn:
                    if name == "commonName":
                        return str(value)
        raise ApiError(401, "Unauthorized", "Unauthorized")

    def _route(self, request: wire.HttpRequest) -> dict[str, Any] | tuple[Resource, str, str, str]:
        parts = request.parts
        if request.method == "GET":
            if parts == ["version"]:
                return {"major": "1", "minor": "31", "gitVersion": "v1.31.0-passerelle-test"}
            if parts == ["api"]:
                return resources.api_versions()
            if parts == ["apis"]:
                return resources.api_group_list(self._resources)
            if parts in (["api", "v1"],) or (len(parts) == 3 and parts[0] == "apis"):
                found = resources.api_resource_list(self._resources, "/".join(parts[1:]))
                if found is None:
                    raise ApiError(404, "NotFound", "the server could not find the requested resource")
                return found
        if parts[:2] == ["api", "v1"]:
            gv, rest = "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            gv, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        r = self._by_path.get((gv, rest[0]))
        if r is None or (namespace and not r.namespaced):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if sub and (sub != "status" or not r.status):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if r.namespaced and name and not namespace:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return r, namespace, name, sub

    def _authorize(self, user: str, verb: str, r: Resource, resource: str, namespace: str, name: str) -> None:
        if self.rules is None:
            return
        for rule in self.rules.get(user, []):
            if (
                ("*" in rule.get("apiGroups", []) or r.group in rule.get("apiGroups", []))
                and ("*" in rule.get("resources", []) or resource in rule.get("resources", []))
                and ("*" in rule.get("verbs", []) or verb in rule.get("verbs", []))
                and (not rule.get("resourceNames") or name in rule["resourceNames"])
            ):
                return
        scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
        raise ApiError(
            403,
            "Forbidden",
            f'{r.qualified} is forbidden: User "{user}" cannot {verb} resource "{resource}" in API group "{r.group}" {scope}',
        )

    def _maybe_fail(self, verb: str, resource: str) -> None:
        for injected in self._injected:
            if (injected.verb in (None, verb)) and (injected.resource in (None, resource)):
                injected.times -= 1
                if injected.times <= 0:
                    self._injected.remove(injected)
                raise ApiError(
                    injected.code,
                    "InternalError" if injected.code >= 500 else "Injected",
                    f"injected error {injected.code}",
                )

    def _answer(
        self, request: wire.HttpRequest, verb: str, r: Resource, namespace: str, name: str, sub: str
    ) -> tuple[int, Any]:
        store = self.store
        if verb == "list":
            labels, fields = _selectors(request, r)
            rv_param = request.query.get("resourceVersion", "")
            match = request.query.get("resourceVersionMatch", "")
            rv: int | None = None
            if rv_param and rv_param != "0":
                rv = _int(rv_param)
                if rv > store.rv:
                    raise ApiError(504, "Timeout", f"Too large resource version: {rv}, current: {store.rv}")
                if match != "Exact":
                    rv = None  # NotOlderThan: the current state is at least that new
            items, at, token = store.list(
                r,
                namespace,
                labels,
                fields,
                rv=rv,
                limit=_int(request.query.get("limit", "0")),
                continue_token=request.query.get("continue", ""),
            )
            meta: dict[str, Any] = {"resourceVersion": str(at)}
            if token:
                meta["continue"] = token
            return 200, {
                "kind": f"{r.kind}List",
                "apiVersion": r.api_version,
                "metadata": meta,
                "items": items,
            }
        body = request.json() if request.body else None
        if verb == "get":
            return 200, store.get(r, namespace, name)
        if verb == "create":
            return 201, store.create(r, namespace, body)
        if verb == "update":
            return 200, store.replace(r, namespace, name, body, status=sub == "status")
        if verb == "patch":
            kind = request.headers.get("content-type", "").split(";")[0]
            if kind not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                raise ApiError(
                    415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {kind}"
                )
            return 200, store.patch(r, namespace, name, body, status=sub == "status")
        if verb == "delete":
            return 200, store.delete(r, namespace, name)
        raise ApiError(405, "MethodNotAllowed", f"{request.method} is not supported here")

    async def _watch(
        self, request: wire.HttpRequest, writer: asyncio.StreamWriter, r: Resource, namespace: str, name: str
    ) -> None:
        labels, fields = _selectors(request, r)
        watch = Watch(resource=r, namespace=namespace, labels=labels, fields=fields)
        rv_param = request.query.get("resourceVersion", "")
        bookmarks = request.query.get("allowWatchBookmarks", "") in ("true", "1")
        timeout = _int(request.query.get("timeoutSeconds", "0")) or 1800
        wire.start_stream(writer)
        try:
            self.store.watch(watch, None if rv_param in ("", "0") else _int(rv_param))
        except (
            ApiError
        ) as e:  # a watch from a compacted version: 200, then one ERROR event (as the real server)
            wire.write_chunk(writer, {"type": "ERROR", "object": e.status()})
            wire.end_stream(writer)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while (left := deadline - loop.time()) > 0:
                try:
                    item = await asyncio.wait_for(watch.queue.get(), min(left, self.bookmark_interval))
                except TimeoutError:
                    if bookmarks and watch.queue.empty():
                        marker = {
                            "kind": r.kind,
                            "apiVersion": r.api_version,
                            "metadata": {"resourceVersion": str(self.store.rv)},
                        }
                        wire.write_chunk(writer, {"type": "BOOKMARK", "object": marker})
                        await writer.drain()
                    continue
                if item is None:
                    break
                wire.write_chunk(writer, {"type": item[0], "object": item[1]})
                await writer.drain()
            wire.end_stream(writer)
        finally:
            self.store.watches.discard(watch)


def _ns(r: Resource, obj: Obj) -> str:
    return (obj.get("metadata") or {}).get("namespace", "default") if r.namespaced else ""


def _verb(request: wire.HttpRequest, name: str) -> str:
    if request.method == "GET":
        if request.query.get("watch", "") in ("true", "1"):
            return "watch"
        return "get" if name else "list"
    verbs = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    verb = verbs.get(request.method, "")
    if not verb or (verb == "create") == bool(name):
        raise ApiError(405, "MethodNotAllowed", f"{request.method} is not supported here")
    return verb


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ApiError(400, "BadRequest", f"{text!r} is not a number") from None


def _selectors(request: wire.HttpRequest, r: Resource) -> tuple[Any, Any]:
    try:
        return label_selector(request.query.get("labelSelector", "")), field_selector(
            request.query.get("fieldSelector", ""), r.kind
        )
    except SelectorError as e:
        raise ApiError(400, "BadRequest", str(e)) from None
