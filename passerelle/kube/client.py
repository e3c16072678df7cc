"""The one I/O seam to the Kubernetes API: kubeconfig in, JSON requests and watch streams out.

lightkube reads the configuration (a kubeconfig file and context, or the in-cluster service
account with its rotating token file) and builds the authenticated HTTP client: bearer tokens,
token files, exec plugins, client certificates, the cluster CA. Requests and watch streams go
over that client directly, as plain JSON: lightkube's own watch neither asks for bookmarks nor
lets a caller re-list on 410 Gone (it restarts the watch from "now" and so misses deletions),
and its typed models would cost a copy of every object that translation reads as dicts anyway.

Each `ApiClient` has its own connection pool with explicit limits. The router makes two: one
for the reflectors (a long-lived connection per watch, sized for them, plus the lists and
Secret reads), one small one for Lease, status and Event requests, so that no number of watches
can ever make a Lease renewal wait for a connection (and leadership be lost).

Errors are mapped once, here, to a small tree: `Unreachable` (no answer), `ApiStatusError` (an
answer with a Status; `Gone` for 410), `KubeConfigError` (cannot even build the client).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx2
from lightkube.config import client_adapter
from lightkube.config.kubeconfig import KubeConfig
from lightkube.core.exceptions import ConfigError

Obj = dict[str, Any]
PAGE = 500  # items per list request, as client-go's pager
CONTROL_CONNECTIONS = 8  # the router's pool of Lease, status and Event requests


class KubeError(Exception):
    """The Kubernetes API could not be used; the message is for the operator."""


class KubeConfigError(KubeError):
    pass


class Unreachable(KubeError):
    pass


class ApiStatusError(KubeError):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(f"{code} {reason}: {message}" if message else f"{code} {reason}")
        self.code, self.reason = code, reason


class Gone(ApiStatusError):
    """410: the resourceVersion is too old (compacted); list again."""


def status_error(status: Mapping[str, Any], code: int = 0) -> ApiStatusError:
    code = int(status.get("code") or code)
    reason, message = str(status.get("reason") or ""), str(status.get("message") or "")
    if code == 401:
        message = f"{message or 'Unauthorized'} (the API server rejected the credentials: check the token or client certificate of the kubeconfig)"
    return (Gone if code == 410 else ApiStatusError)(code, reason or "Error", message)


def load_config(kubeconfig: str = "", context: str = "") -> tuple[KubeConfig, str]:
    """The configuration and a description of where it came from. Empty `kubeconfig`: the
    in-cluster service account, then $KUBECONFIG, then ~/.kube/config."""
    try:
        if kubeconfig:
            return KubeConfig.from_file(kubeconfig), kubeconfig
        try:
            return KubeConfig.from_service_account(), "in-cluster service account"
        except (ConfigError, KeyError, OSError):
            return KubeConfig.from_env(), "kubeconfig from $KUBECONFIG or ~/.kube/config"
    except (ConfigError, OSError, ValueError, KeyError, TypeError) as e:
        raise KubeConfigError(
            f"cannot load the Kubernetes configuration {kubeconfig or ''}: {e}".replace("  ", " ")
        ) from None


class ApiClient:
    def __init__(self, http: httpx2.AsyncClient, *, server: str, namespace: str = "default") -> None:
        self._http = http
        self.server = server
        self.namespace = namespace  # the context's (or service account's) namespace

    @classmethod
    def connect(
        cls,
        kubeconfig: str = "",
        context: str = "",
        *,
        timeout: float = 10.0,
        connections: int = 100,
    ) -> ApiClient:
        """A client whose pool holds at most `connections` connections (a request beyond them
        waits up to `timeout` for one, then fails as Unreachable)."""
        config, _ = load_config(kubeconfig, context)
        try:
            single = config.get(context or None)
            assert single is not None
            params = client_adapter.ConnectionParams(timeout=httpx2.Timeout(timeout), trust_env=False)
            limits = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
            http = httpx2.AsyncClient(limits=limits, **params.httpx_params(single))
        except (ConfigError, OSError, ValueError, KeyError, AssertionError) as e:
            raise KubeConfigError(f"cannot use the Kubernetes configuration: {e}") from None
        return cls(http, server=single.cluster.server, namespace=single.namespace)

    async def aclose(self) -> None:
        await self._http.aclose()

    @contextmanager
    def _mapped(self, path: str) -> Iterator[None]:
        try:
            yield
        except (httpx2.HTTPError, httpx2.StreamError) as e:
            raise Unreachable(f"{self.server}: {type(e).__name__}: {e or 'no answer'}") from None
        except json.JSONDecodeError as e:
            raise Unreachable(f"{self.server}{path}: not JSON: {e}") from None
        except ConfigError as e:  # an exec credential plugin or token file failing at request time
            raise KubeConfigError(f"credentials for {self.server}: {e}") from None

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Obj:
        with self._mapped(path):
            content = None if body is None else json.dumps(body).encode()
            headers = {"Accept": "application/json"}
            if content is not None:
                headers["Content-Type"] = content_type
            response = await self._http.request(
                method, path, params=dict(params or {}), content=content, headers=headers
            )
            data = _json(response.content)
        if response.status_code >= 400:
            raise status_error(data if isinstance(data, dict) else {}, response.status_code)
        return data if isinstance(data, dict) else {}

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Obj:
        return await self.request("GET", path, params=params)

    async def patch(self, path: str, body: Obj, *, strategic: bool = True) -> Obj:
        """A strategic merge patch (built-in kinds), or a JSON merge patch (`strategic=False`)."""
        kind = "strategic-merge-patch" if strategic else "merge-patch"
        return await self.request("PATCH", path, body=body, content_type=f"application/{kind}+json")

    async def list(self, path: str, params: Mapping[str, str] | None = None) -> tuple[list[Obj], str]:
        """Every item of a collection, a page at a time, and the list's resourceVersion."""
        items: list[Obj] = []
        query = {**(params or {}), "limit": str(PAGE)}
        while True:
            page = await self.get(path, query)
            items.extend(i for i in page.get("items") or [] if isinstance(i, dict))
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                return items, str(meta.get("resourceVersion") or "")
            query["continue"] = meta["continue"]

    async def watch(
        self, path: str, params: Mapping[str, str], *, timeout: float
    ) -> AsyncGenerator[Obj, None]:
        """The events of one watch request, until the server ends it. An ERROR event is raised."""
        query = {**params, "watch": "1"}
        with self._mapped(path):
            stream = self._http.stream("GET", path, params=query, timeout=httpx2.Timeout(10.0, read=timeout))
            async with stream as response:
                if response.status_code >= 400:
                    data = _json(await response.aread())
                    raise status_error(data if isinstance(data, dict) else {}, response.status_code)
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
                        raise Unreachable(f"{self.server}{path}: not a watch event: {line[:100]!r}")
                    if event.get("type") == "ERROR":
                        raise status_error(event.get("object") or {}, 500)
                    yield event


def _json(content: bytes) -> Any:
    try:
        return json.loads(content) if content else {}
    except json.JSONDecodeError:
        return {"message": content[:200].decode("utf-8", "replace")}
