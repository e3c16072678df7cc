"""The test API server's request handling: authenticate, route, authorize, answer or stream.

`Handlers` is the half of KubeAPI that runs on its event loop for each request; KubeAPI holds the
state it reads (store, tokens, rules, the injected errors, the request log).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from tests.kubeapi import resources, wire
from tests.kubeapi.resources import Resource
from tests.kubeapi.selectors import SelectorError, field_selector, label_selector
from tests.kubeapi.store import ApiError, Store, Watch

# An RBAC PolicyRule: apiGroups, resources, verbs[, resourceNames]; `namespaces` (the test
# server's own key) limits it to those namespaces, as a Role bound there by a RoleBinding does.
Rule = dict[str, list[str]]


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
    delay: float = 0.0  # > 0: not an error, the request is answered this much later


class Handlers:
    tokens: dict[str, str]
    rules: dict[str, list[Rule]] | None
    bookmark_interval: float
    store: Store
    log: list[Request]
    _resources: tuple[Resource, ...]
    _by_path: dict[tuple[str, str], Resource]
    _injected: list[_Injected]

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
            await self._maybe_stall(verb, resource)
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
                and (not rule.get("namespaces") or namespace in rule["namespaces"])
            ):
                return
        scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
        raise ApiError(
            403,
            "Forbidden",
            f'{r.qualified} is forbidden: User "{user}" cannot {verb} resource "{resource}" in API group "{r.group}" {scope}',
        )

    async def _maybe_stall(self, verb: str, resource: str) -> None:
        for injected in self._injected:
            if injected.delay and injected.verb in (None, verb) and injected.resource in (None, resource):
                injected.times -= 1
                if injected.times <= 0:
                    self._injected.remove(injected)
                await asyncio.sleep(injected.delay)
                return

    def _maybe_fail(self, verb: str, resource: str) -> None:
        for injected in self._injected:
            if injected.delay:
                continue
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
            preconditions = (body or {}).get("preconditions") or {} if isinstance(body, dict) else {}
            return 200, store.delete(
                r, namespace, name, resource_version=preconditions.get("resourceVersion")
            )
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
