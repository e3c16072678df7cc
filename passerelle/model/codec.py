"""DynamicConfig <-> JSON-ready dicts, for the API and for crossing process boundaries."""

from __future__ import annotations

from typing import Any

from passerelle.middlewares.base import CODEC
from passerelle.model.config import DynamicConfig, Middleware, PathMatch, PathType, Router, Server, Service


def dump(config: DynamicConfig) -> dict[str, Any]:
    return {
        "routers": [dump_router(r) for r in config.routers],
        "services": [dump_service(s) for s in config.services],
        "middlewares": [dump_middleware(m) for m in config.middlewares],
    }


def dump_middleware(m: Middleware) -> dict[str, Any]:
    return {"name": m.name, "kind": m.spec.kind, "spec": m.spec.to_dict()}


def load_middleware(m: dict[str, Any]) -> Middleware:
    return Middleware(name=m["name"], spec=CODEC[m["kind"]].from_dict(m["spec"]))


def dump_service(s: Service) -> dict[str, Any]:
    return {
        "name": s.name,
        "servers": [{"host": v.host, "port": v.port} for v in s.servers],
        "unavailable": s.unavailable,
    }


def dump_router(r: Router) -> dict[str, Any]:
    return {
        "name": r.name,
        "service": r.service,
        "host": r.host,
        "path": None if r.path is None else {"type": str(r.path.type), "value": r.path.value},
        "entrypoints": list(r.entrypoints),
        "middlewares": list(r.middlewares),
        "source": r.source,
        "rule": r.rule(),
    }


def load(data: dict[str, Any]) -> DynamicConfig:
    return DynamicConfig(
        routers=tuple(load_router(r) for r in data["routers"]),
        services=tuple(load_service(s) for s in data["services"]),
        middlewares=tuple(load_middleware(m) for m in data.get("middlewares", ())),
    )


def load_router(r: dict[str, Any]) -> Router:
    path = r["path"]
    return Router(
        name=r["name"],
        service=r["service"],
        host=r["host"],
        path=None if path is None else PathMatch(type=PathType(path["type"]), value=path["value"]),
        entrypoints=tuple(r["entrypoints"]),
        middlewares=tuple(r.get("middlewares", ())),
        source=r["source"],
    )


def load_service(s: dict[str, Any]) -> Service:
    return Service(
        name=s["name"],
        servers=tuple(Server(host=v["host"], port=v["port"]) for v in s["servers"]),
        unavailable=s["unavailable"],
    )
