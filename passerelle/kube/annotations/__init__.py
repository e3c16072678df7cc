"""Ingress annotations in three dialects, read into small values plus a report on every key.

One module per dialect, each a pure parser from the annotation dict to what its keys ask for:
`traefik17.py` (Traefik 1.7, both `ingress.kubernetes.io/` and `traefik.ingress.kubernetes.io/`),
`traefik.py` (Traefik 2/3, `traefik.ingress.kubernetes.io/router.*`) and `passerelle.py`
(`passerelle.io/...`). `read_annotations` runs all three and settles overlaps: for placement,
passerelle's key beats Traefik 2/3's, which beat 1.7's; for the one redirect an Ingress gets,
`passerelle.io/ssl-redirect` beats 1.7's `redirect-entry-point`, which beats 1.7's `ssl-redirect`.
A losing key is reported as ignored. The
`report.py` report says for every key under our prefixes whether it was honoured, ignored (and
why) or unknown; translation turns a report with ignored or unknown keys into a warning Problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from passerelle.kube.annotations import passerelle, traefik, traefik17
from passerelle.kube.annotations.report import PREFIXES, AnnotationReport, KeyReport, KeyStatus

_PLACEMENT_17 = ("frontend-entry-points",)
_PLACEMENT_23 = ("router.entrypoints", "router.tls")
_SSL_REDIRECT_17 = frozenset({"ssl-redirect", "ssl-temporary-redirect", "ssl-host"})
_ENTRY_POINT_17 = frozenset({"redirect-entry-point", "redirect-permanent"})


@dataclass(frozen=True, slots=True, kw_only=True)
class IngressAnnotations:
    passerelle: passerelle.Passerelle
    traefik: traefik.Traefik
    traefik17: traefik17.Traefik17
    report: AnnotationReport
    # Which dialect decides placement: "passerelle", "traefik" (2/3), "traefik17", or "" (the default rule).
    placement: str


EMPTY = IngressAnnotations(
    passerelle=passerelle.Passerelle(),
    traefik=traefik.Traefik(),
    traefik17=traefik17.Traefik17(),
    report=AnnotationReport(),
    placement="",
)


def read_annotations(annotations: Mapping[str, str]) -> IngressAnnotations:
    if not any(key.startswith(PREFIXES) for key in annotations):
        return EMPTY
    ours, v2, v17 = passerelle.parse(annotations), traefik.parse(annotations), traefik17.parse(annotations)
    keys = list(ours.keys + v2.keys + v17.keys)
    claimed = {k.key for k in keys}
    keys += (
        KeyReport(key=k, status=KeyStatus.UNKNOWN)
        for k in annotations
        if k.startswith(PREFIXES) and k not in claimed
    )

    placement = ""
    if ours.entrypoints is not None:
        placement = "passerelle"
    elif v2.used:
        placement = "traefik"
    elif v17.used:
        placement = "traefik17"
    winner = {"passerelle": "passerelle.io/entrypoints", "traefik": "Traefik 2/3 router keys"}.get(placement)
    if winner is not None:
        losers = set(_PLACEMENT_17) | (set(_PLACEMENT_23) if placement == "passerelle" else set())
        keys = [
            _overridden(k, winner)
            if _placement_key(k.key) in losers and k.status is KeyStatus.HONOURED
            else k
            for k in keys
        ]
    # One redirect per Ingress (kube/placement.py): passerelle.io/ssl-redirect, else 1.7's
    # redirect-entry-point, else 1.7's ssl-redirect. The keys of the others are not honoured.
    asked_17 = {
        "redirect-entry-point": v17.redirect_entrypoint is not None,
        "ssl-redirect": v17.ssl_redirect is not None,
    }
    redirect_winner, redirect_losers = "", frozenset[str]()
    if ours.ssl_redirect:
        redirect_winner = "passerelle.io/ssl-redirect"
        redirect_losers = (_ENTRY_POINT_17 if asked_17["redirect-entry-point"] else frozenset()) | (
            _SSL_REDIRECT_17 if asked_17["ssl-redirect"] else frozenset()
        )
    elif asked_17["redirect-entry-point"] and asked_17["ssl-redirect"]:
        redirect_winner, redirect_losers = "redirect-entry-point", _SSL_REDIRECT_17
    if redirect_losers:
        note = f"redirect set by {redirect_winner}"
        keys = [
            replace(k, status=KeyStatus.IGNORED, note=note)
            if traefik17.name_of(k.key) in redirect_losers and k.status is KeyStatus.HONOURED
            else k
            for k in keys
        ]
    return IngressAnnotations(
        passerelle=ours,
        traefik=v2,
        traefik17=v17,
        report=AnnotationReport(keys=tuple(sorted(keys))),
        placement=placement,
    )


def _placement_key(key: str) -> str:
    name = traefik17.name_of(key)
    if name is not None:
        return name
    return key.removeprefix(traefik.PREFIX).lower()


def _overridden(key: KeyReport, winner: str) -> KeyReport:
    return replace(key, status=KeyStatus.IGNORED, note=f"placement set by {winner}")
