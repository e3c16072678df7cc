"""DynamicConfig <-> JSON-ready dicts, for the API and for crossing process boundaries."""

from __future__ import annotations

from typing import Any

from passerelle.model.config import DynamicConfig, PathMatch, PathType, Router, Server, Service


def dump(config: DynamicConfig) -> dict[str, Any]:
    return {
        "routers": [_dump_router(r) for r in config.routers],
        "services": [
            {
                "name": s.name,
                "servers": [{"host": v.host, "port": v.port} for v in s.servers],
                "unavailable": s.unavailable,
            }
            for s in config.services
        ],
    }


def _dump_router(r: Router) -> dict[str, Any]:
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
    routers = tuple(
        Router(
            name=r["name"],
            service=r["service"],
            host=r["host"],
            path=None
            if r["path"] is None
            else PathMatch(type=PathType(r["path"]["type"]), value=r["path"]["value"]),
            entrypoints=tuple(r["entrypoints"]),
            source=r["source"],
        )
        for r in data["routers"]
    )
    services = tuple(
        Service(
            name=s["name"],
            servers=tuple(Server(host=v["host"], port=v["port"]) for v in s["servers"]),
            unavailable=s["unavailable"],
        )
        for s in data["services"]
    )
    return DynamicConfig(routers=routers, services=services)
