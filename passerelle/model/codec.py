"""DynamicConfig <-> JSON-ready dicts, for the API and for crossing process boundaries."""

from __future__ import annotations

from typing import Any

from passerelle.model.config import DynamicConfig, PathMatch, PathType, Router, Server, Service


def dump(config: DynamicConfig) -> dict[str, Any]:
    return {
        "routers": [dump_router(r) for r in config.routers],
        "services": [dump_service(s) for s in config.services],
    }


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
        "source": r.source,
        "rule": r.rule(),
    }


def load(data: dict[str, Any]) -> DynamicConfig:
    return DynamicConfig(
        routers=tuple(load_router(r) for r in data["routers"]),
        services=tuple(load_service(s) for s in data["services"]),
    )


def load_router(r: dict[str, Any]) -> Router:
    path = r["path"]
    return Router(
        name=r["name"],
        service=r["service"],
        host=r["host"],
        path=None if path is None else PathMatch(type=PathType(path["type"]), value=path["value"]),
        entrypoints=tuple(r["entrypoints"]),
        source=r["source"],
    )


def load_service(s: dict[str, Any]) -> Service:
    return Service(
        name=s["name"],
        servers=tuple(Server(host=v["host"], port=v["port"]) for v in s["servers"]),
        unavailable=s["unavailable"],
    )
