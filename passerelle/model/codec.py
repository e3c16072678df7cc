"""DynamicConfig <-> JSON-ready dicts, for the API and for crossing process boundaries.

Private keys are left out unless `with_keys` (only the worker channel asks for them): the API shows
certificates by name, fingerprint and source. A dump without keys does not load back.
"""

from __future__ import annotations

from typing import Any

from passerelle.middlewares.base import SPECS
from passerelle.model.config import (
    DynamicConfig,
    Middleware,
    PathMatch,
    PathType,
    RequestMatch,
    Router,
    Server,
    Service,
    WeightedService,
)
from passerelle.model.tls import Certificate, ClientCA, HostOptions, TlsConfig
from passerelle.tls.options import TlsOptions


def dump(config: DynamicConfig, *, with_keys: bool = False) -> dict[str, Any]:
    return {
        "routers": [dump_router(r) for r in config.routers],
        "services": [dump_service(s) for s in config.services],
        "middlewares": [dump_middleware(m) for m in config.middlewares],
        "tls": dump_tls(config.tls, with_keys=with_keys),
    }


def dump_middleware(m: Middleware) -> dict[str, Any]:
    return {"name": m.name, "kind": m.spec.kind, "spec": m.spec.to_dict()}


def load_middleware(m: dict[str, Any]) -> Middleware:
    return Middleware(name=m["name"], spec=SPECS[m["kind"]].from_dict(m["spec"]))


def dump_tls(tls: TlsConfig, *, with_keys: bool = False) -> dict[str, Any]:
    return {
        "certificates": [dump_certificate(c, with_keys=with_keys) for c in tls.certificates],
        "hosts": [{"host": h.host, "options": h.options, "source": h.source} for h in tls.hosts],
        "clientCAs": [{"options": c.options, "pem": c.pem, "source": c.source} for c in tls.client_cas],
        "options": [o.to_dict() for o in tls.options],
        "requests": [
            {"resolver": r.resolver, "names": list(r.names), "sources": [str(s) for s in r.sources]}
            for r in tls.requests
        ],
    }


def dump_certificate(c: Certificate, *, with_keys: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "names": list(c.names),
        "fingerprint": c.fingerprint,
        "notAfter": c.not_after,
        "default": c.default,
        "source": c.source,
    }
    if with_keys:
        out["certPem"] = c.cert_pem
        out["keyPem"] = c.key_pem
    return out


def dump_service(s: Service) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": s.name,
        "servers": [{"host": v.host, "port": v.port} for v in s.servers],
        "unavailable": s.unavailable,
        "scheme": s.scheme,
    }
    if s.weighted:  # Gateway API only: Ingress services keep their shape
        out["weighted"] = [
            {"service": w.service, "weight": w.weight, "middlewares": list(w.middlewares)} for w in s.weighted
        ]
    if s.status != 503:
        out["status"] = s.status
    return out


def dump_router(r: Router) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": r.name,
        "service": r.service,
        "host": r.host,
        "path": None if r.path is None else {"type": str(r.path.type), "value": r.path.value},
        "entrypoints": list(r.entrypoints),
        "middlewares": list(r.middlewares),
        "source": r.source,
        "rule": r.rule(),
    }
    if r.conditions is not None:  # Gateway API only: Ingress routers keep their shape
        out["conditions"] = dump_conditions(r.conditions)
    if r.listener is not None:
        out["listener"] = r.listener
    return out


def dump_conditions(c: RequestMatch) -> dict[str, Any]:
    return {"method": c.method, "headers": [list(h) for h in c.headers], "query": [list(q) for q in c.query]}


def load_conditions(c: dict[str, Any] | None) -> RequestMatch | None:
    if c is None:
        return None
    return RequestMatch(
        method=c["method"],
        headers=tuple((n, v) for n, v in c["headers"]),
        query=tuple((n, v) for n, v in c["query"]),
    )


def load(data: dict[str, Any]) -> DynamicConfig:
    return DynamicConfig(
        routers=tuple(load_router(r) for r in data["routers"]),
        services=tuple(load_service(s) for s in data["services"]),
        middlewares=tuple(load_middleware(m) for m in data.get("middlewares", ())),
        tls=load_tls(data["tls"]) if "tls" in data else TlsConfig(),
    )


def load_tls(t: dict[str, Any]) -> TlsConfig:
    return TlsConfig(
        certificates=tuple(load_certificate(c) for c in t["certificates"]),
        hosts=tuple(
            HostOptions(host=h["host"], options=h["options"], source=h["source"]) for h in t["hosts"]
        ),
        client_cas=tuple(
            ClientCA(options=c["options"], pem=c["pem"], source=c["source"]) for c in t["clientCAs"]
        ),
        options=tuple(TlsOptions.from_dict(o) for o in t.get("options", ())),
    )


def load_certificate(c: dict[str, Any]) -> Certificate:
    return Certificate(
        cert_pem=c["certPem"],
        key_pem=c["keyPem"],
        names=tuple(c["names"]),
        fingerprint=c["fingerprint"],
        not_after=c["notAfter"],
        default=c["default"],
        source=c["source"],
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
        conditions=load_conditions(r.get("conditions")),
        listener=r.get("listener"),
    )


def load_service(s: dict[str, Any]) -> Service:
    return Service(
        name=s["name"],
        servers=tuple(Server(host=v["host"], port=v["port"]) for v in s["servers"]),
        unavailable=s["unavailable"],
        scheme=s.get("scheme", "http"),
        weighted=tuple(
            WeightedService(service=w["service"], weight=w["weight"], middlewares=tuple(w["middlewares"]))
            for w in s.get("weighted", ())
        ),
        status=s.get("status", 503),
    )
