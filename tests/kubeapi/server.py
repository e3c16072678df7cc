"""`KubeAPI`, the handle a test holds on the test API server (requests are handled in handlers.py).

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
from pathlib import Path
from typing import Any, TypeVar

import trustme
import yaml

from tests.kubeapi import resources, wire
from tests.kubeapi.handlers import Handlers, Request, Rule, _Injected
from tests.kubeapi.resources import Resource
from tests.kubeapi.store import ApiError, Obj, Store, gone

T = TypeVar("T")


class KubeAPI(Handlers):
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

        async def end_the_rest() -> None:
            # Connections still in their TLS handshake (asyncio's _accept_connection2) are not ours
            # yet: cancelled, they close their transports, which a stopped loop would leave open.
            current = asyncio.current_task()
            rest = [task for task in asyncio.all_tasks() if task is not current]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
            await asyncio.sleep(0)  # the transports' close callbacks

        self._call(end_the_rest())
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
    def install_crds(self, *groups: str) -> None:
        """Serve these CRD groups from now on (their objects, discovery)."""

        def install() -> None:
            self._resources = resources.served(
                frozenset(groups) | {r.group for r in self._resources if r.group in resources.CRDS}
            )
            self._by_path = {(r.api_version, r.plural): r for r in self._resources}
            self._by_kind = {(r.api_version, r.kind): r for r in self._resources}
            self.store.resources = self._resources

        self._run(install)

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

    def stall(
        self, seconds: float, *, times: int = 1, verb: str | None = None, resource: str | None = None
    ) -> None:
        """The next `times` matching requests are answered `seconds` late (then as usual)."""
        self._run(lambda: self._injected.append(_Injected(0, times, verb, resource, seconds)))

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


def _ns(r: Resource, obj: Obj) -> str:
    return (obj.get("metadata") or {}).get("namespace", "default") if r.namespaced else ""
