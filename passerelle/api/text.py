"""An explanation (explain.py's JSON) as lines for a terminal, for `passerelle explain`."""

from __future__ import annotations

from typing import Any


def explanation_lines(x: dict[str, Any]) -> list[str]:
    result = x["result"]
    status = f"{result['status']} " if result.get("status") else ""
    lines = [f"answer:      {status}{result['detail']}"]
    entry = x.get("entryPoint")
    if entry is None:
        return lines
    tls = " (TLS)" if entry["tls"] else ""
    lines.append(f"entry point: {entry['name']}{tls}, port {entry['port']}: {entry['chosenBecause']}")
    if x.get("tls"):
        t = x["tls"]
        cert = t["certificate"]
        option = t.get("option") or {}
        detail = (
            f"; {option['minVersion']}+, client certificates: {option['clientAuthType']}" if option else ""
        )
        lines.append(f"tls option:  {t['options']} (from {t['optionsFrom']}){detail}")
        lines.append(
            f"certificate: {cert.get('subject') or ', '.join(cert['names'])}, expires {cert['notAfter']}"
        )
        lines.append(f"             {t['certificateChosenBecause']}; source {cert['source']}")
    router = x.get("router")
    if router is None:
        lines.append("router:      none")
    else:
        where = f" ({router['file']})" if router.get("file") else ""
        lines.append(f"router:      {router['name']}: {router['rule']}")
        lines.append(f"             from {router['source']}{where}")
    for m in x.get("middlewares", []):
        lines.append(f"middleware:  {m['name']} ({m['kind']}){'' if m['applied'] else ', not reached'}")
    service = x.get("service")
    if service is not None:
        lines.append(f"service:     {service['name']}")
        for server in service["servers"]:
            lines.append(f"  endpoint:  {server}")
        if not service["servers"]:
            lines.append(f"  no endpoints: {service['unavailable']}")
    others = x.get("others", [])
    if others:
        lines.append("other routers for this host:")
        for other in others:
            lines.append(f"  {other['rule']} ({other['source']}): {other['reason']}: {other['detail']}")
        if x.get("othersLeftOut"):
            lines.append(f"  and {x['othersLeftOut']} more")
    return lines
