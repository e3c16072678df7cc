"""Objects, resourceVersions and the event history of the test API server (no I/O).

One counter versions every write, as etcd's revision does; an object's `metadata.resourceVersion`
is the counter at its last write, a list's is the counter when it was read. The history keeps
each write (old and new object) so that a watch can start from any version not yet compacted;
starting from a compacted one is 410 Gone (`reason: Expired`), which is what `expire()` forces.
A write whose `metadata.resourceVersion` is not the current one is 409 Conflict. For resources
with a status subresource, writes to the object keep its status and writes to `/status` keep the
rest. Watches see objects enter and leave their selectors as ADDED and DELETED, as from the real
watch cache. Everything runs on the server's event loop thread; KubeAPI marshals calls there.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.kubeapi.resources import Resource
from tests.kubeapi.selectors import Selector

Obj = dict[str, Any]
Key = tuple[str, str, str]  # (qualified resource, namespace, name)

# Kinds whose status a create keeps (the kubelet registers a Node with its status; a test
# creates a Pod with its readiness instead of running a kubelet).
STATUS_ON_CREATE = frozenset({"Node", "Pod", "Namespace"})
HISTORY = 20_000  # writes kept for watches; older ones are compacted as etcd would


class ApiError(Exception):
    """An error answer: the HTTP status and the `Status` object the real server sends."""

    def __init__(
        self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, dict(details or {})

    def status(self) -> Obj:
        out: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            out["details"] = self.details
        return out


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


@dataclass(slots=True)
class Write:
    rv: int
    resource: str
    old: Obj | None
    new: Obj | None  # None: deleted (then `gone_as` is the object as deleted)
    gone_as: Obj | None = None


@dataclass(eq=False, slots=True)
class Watch:
    """One open watch: what it selects, and the queue its stream reads events from."""

    resource: Resource
    namespace: str  # "" for all namespaces
    labels: Selector
    fields: Selector
    queue: asyncio.Queue[tuple[str, Obj] | None] = field(default_factory=asyncio.Queue)

    def offer(self, write: Write) -> None:
        if write.resource != self.resource.qualified:
            return
        was = write.old is not None and self._selects(write.old)
        now = write.new is not None and self._selects(write.new)
        if now and not was:
            self.queue.put_nowait(("ADDED", copy.deepcopy(write.new)))  # type: ignore[arg-type]
        elif now and was:
            self.queue.put_nowait(("MODIFIED", copy.deepcopy(write.new)))  # type: ignore[arg-type]
        elif was:
            self.queue.put_nowait(("DELETED", copy.deepcopy(write.new or write.gone_as)))  # type: ignore[arg-type]

    def _selects(self, obj: Obj) -> bool:
        meta = obj.get("metadata") or {}
        if self.namespace and meta.get("namespace") != self.namespace:
            return False
        return self.labels(obj) and self.fields(obj)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (also used for strategic merge patches: lists are replaced)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


class Store:
    def __init__(self, resources: tuple[Resource, ...], *, first_version: int = 1000) -> None:
        self.resources = resources
        self.rv = first_version
        self.compacted = first_version  # a watch or Exact list from a version below this is 410 Gone
        self.objects: dict[Key, Obj] = {}
        self.history: list[Write] = []
        self.watches: set[Watch] = set()

    # -- reads -----------------------------------------------------------------------------------
    def get(self, resource: Resource, namespace: str, name: str) -> Obj:
        obj = self.objects.get((resource.qualified, namespace, name))
        if obj is None:
            raise not_found(resource, name)
        return copy.deepcopy(obj)

    def state_at(self, resource: Resource, rv: int) -> dict[Key, Obj]:
        """The objects of one resource as they were at version `rv` (not compacted)."""
        if rv < self.compacted:
            raise gone(f"too old resource version: {rv} ({self.rv})")
        state = {k: v for k, v in self.objects.items() if k[0] == resource.qualified}
        for write in reversed(self.history):
            if write.rv <= rv:
                break
            if write.resource != resource.qualified:
                continue
            key = _key_of(resource, write.old or write.new or write.gone_as or {})
            if write.old is None:
                state.pop(key, None)
            else:
                state[key] = write.old
        return state

    def list(
        self,
        resource: Resource,
        namespace: str,
        labels: Selector,
        fields: Selector,
        *,
        rv: int | None = None,
        limit: int = 0,
        continue_token: str = "",
    ) -> tuple[list[Obj], int, str]:
        """(items in key order, the list's resourceVersion, continue token or "")."""
        start = ""
        if continue_token:
            try:
                token = json.loads(base64.urlsafe_b64decode(continue_token))
                rv, start = int(token["rv"]), str(token["start"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, "BadRequest", "continue key is not valid") from None
            if rv < self.compacted:
                raise gone(
                    "The provided continue parameter is too old to display a consistent list result. "
                    "You can start a new list without the continue parameter."
                )
        read_at = self.rv if rv is None else rv
        state = (
            self.state_at(resource, read_at)
            if read_at != self.rv
            else {k: v for k, v in self.objects.items() if k[0] == resource.qualified}
        )
        items = []
        for key in sorted(state):
            obj = state[key]
            if namespace and key[1] != namespace:
                continue
            if start and f"{key[1]}/{key[2]}" <= start:
                continue
            if not (labels(obj) and fields(obj)):
                continue
            if limit and len(items) == limit:
                last = items[-1]["metadata"]
                token = {"rv": read_at, "start": f"{last.get('namespace', '')}/{last['name']}"}
                return items, read_at, base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
            item = copy.deepcopy(obj)
            # Items of a list carry no kind/apiVersion: the list's kind says it (as the real server).
            item.pop("kind", None)
            item.pop("apiVersion", None)
            items.append(item)
        return items, read_at, ""

    def watch(self, watch: Watch, rv: int | None) -> None:
        """Register a watch from `rv` (replaying later writes) or, with None, from now with an
        ADDED event for every existing object ("Get State and Start at Most Recent")."""
        if rv is None:
            for key in sorted(self.objects):
                if key[0] == watch.resource.qualified:
                    watch.offer(Write(rv=self.rv, resource=key[0], old=None, new=self.objects[key]))
        else:
            if rv < self.compacted:
                raise gone(f"too old resource version: {rv} ({self.rv})")
            for write in self.history:
                if write.rv > rv:
                    watch.offer(write)
        self.watches.add(watch)

    # -- writes ----------------------------------------------------------------------------------
    def create(self, resource: Resource, namespace: str, body: Obj) -> Obj:
        obj = self._checked(resource, namespace, body)
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        if not meta.get("name"):
            raise ApiError(
                422,
                "Invalid",
                f"{resource.kind} is invalid: metadata.name: Required value: name or generateName is required",
            )
        key = _key_of(resource, obj)
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", f'{resource.qualified} "{meta["name"]}" already exists',
                           {"name": meta["name"], "group": resource.group, "kind": resource.plural})  # fmt: skip
        meta.pop("resourceVersion", None)
        if resource.status and resource.kind not in STATUS_ON_CREATE:
            obj.pop("status", None)  # PrepareForCreate: the status is the controller's to write
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now())
        if "spec" in obj:
            meta["generation"] = 1
        return self._commit(resource, key, None, obj)

    def replace(
        self, resource: Resource, namespace: str, name: str, body: Obj, *, status: bool = False
    ) -> Obj:
        current = self.objects.get((resource.qualified, namespace, name))
        if current is None:
            raise not_found(resource, name)
        obj = self._checked(resource, namespace, body)
        if obj["metadata"].get("name") != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
        self._precondition(resource, current, obj["metadata"].get("resourceVersion"))
        if status:  # PUT .../status: only the status changes
            new = copy.deepcopy(current)
            new["status"] = obj.get("status")
        else:
            new = obj
            new["metadata"].update(
                {k: current["metadata"][k] for k in ("uid", "creationTimestamp") if k in current["metadata"]}
            )
            if resource.status:
                if "status" in current:
                    new["status"] = copy.deepcopy(current["status"])
                else:
                    new.pop("status", None)
            generation = current["metadata"].get("generation")
            if generation is not None:
                new["metadata"]["generation"] = generation + (new.get("spec") != current.get("spec"))
        return self._commit(resource, _key_of(resource, current), current, new)

    def patch(
        self, resource: Resource, namespace: str, name: str, patch: Obj, *, status: bool = False
    ) -> Obj:
        current = self.objects.get((resource.qualified, namespace, name))
        if current is None:
            raise not_found(resource, name)
        if not isinstance(patch, dict):
            raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
        self._precondition(resource, current, (patch.get("metadata") or {}).get("resourceVersion"))
        merged = merge_patch(current, patch)
        merged["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self.replace(resource, namespace, name, merged, status=status)

    def delete(self, resource: Resource, namespace: str, name: str, *, resource_version: Any = None) -> Obj:
        """resource_version: DeleteOptions.preconditions.resourceVersion (409 when it is not current)."""
        key = (resource.qualified, namespace, name)
        current = self.objects.get(key)
        if current is None:
            raise not_found(resource, name)
        self._precondition(resource, current, resource_version)
        self.rv += 1
        gone_as = copy.deepcopy(current)
        gone_as["metadata"]["resourceVersion"] = str(self.rv)
        del self.objects[key]
        self._record(Write(rv=self.rv, resource=key[0], old=current, new=None, gone_as=gone_as))
        return copy.deepcopy(gone_as)

    def expire(self) -> None:
        """Compact all history: every version before now is too old to watch from."""
        self.history.clear()
        self.compacted = self.rv

    # -- internals -------------------------------------------------------------------------------
    def _checked(self, resource: Resource, namespace: str, body: Obj) -> Obj:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request is not a JSON object")
        obj = copy.deepcopy(body)
        if (
            obj.setdefault("kind", resource.kind) != resource.kind
            or obj.setdefault("apiVersion", resource.api_version) != resource.api_version
        ):
            raise ApiError(
                400,
                "BadRequest",
                f"the object is a {obj['apiVersion']} {obj['kind']}, this is {resource.api_version} {resource.kind}",
            )
        meta = obj.setdefault("metadata", {})
        if resource.namespaced:
            if meta.setdefault("namespace", namespace) != namespace:
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
        else:
            meta.pop("namespace", None)
        return obj

    def _precondition(self, resource: Resource, current: Obj, rv: Any) -> None:
        if rv is not None and str(rv) != current["metadata"]["resourceVersion"]:
            name = current["metadata"]["name"]
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {resource.qualified} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
                {"name": name, "group": resource.group, "kind": resource.plural},
            )

    def _commit(self, resource: Resource, key: Key, old: Obj | None, new: Obj) -> Obj:
        self.rv += 1
        new["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[key] = new
        self._record(Write(rv=self.rv, resource=key[0], old=old, new=new))
        return copy.deepcopy(new)

    def _record(self, write: Write) -> None:
        self.history.append(write)
        if len(self.history) > HISTORY:
            dropped = self.history[: len(self.history) - HISTORY]
            del self.history[: len(dropped)]
            self.compacted = dropped[-1].rv
        for watch in list(self.watches):
            watch.offer(write)


def _key_of(resource: Resource, obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (
        resource.qualified,
        meta.get("namespace", "") if resource.namespaced else "",
        meta.get("name", ""),
    )


def not_found(resource: Resource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{resource.qualified} "{name}" not found',
                    {"name": name, "group": resource.group, "kind": resource.plural})  # fmt: skip
