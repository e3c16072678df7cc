"""The CLI's output: an explanation (explain.py's JSON) and `check`'s problems, as lines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from passerelle.kube.snapshot import Key
from passerelle.model import Problem


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
    if result.get("allowList"):
        lines.append(f"allow list:  {result['allowList']}")
    upstream = result.get("upstream")
    if upstream is not None:
        lines.append(f"upstream:    {upstream['requestLine']}")
        lines.extend(f"             {field}" for field in upstream["headers"])
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


def _escape(text: str, *, property: bool = False) -> str:
    """GitHub workflow-command escaping (`%`, CR, LF; and `:` `,` inside properties)."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if property else text


def problem_lines(
    problems: Sequence[Problem], origins: Mapping[Key, str], *, style: str, root: str
) -> list[str]:
    """`passerelle check`'s lines: `text` is `file:line: severity: object: message`; `github`
    is a workflow command per problem (an annotation on the file and line, in a pull request),
    with paths under `root` (the directory as given on the command line)."""
    lines = []
    for problem in problems:
        ref = problem.ref
        where = origins.get((ref.kind, ref.namespace, ref.name), "")
        if style == "text":
            lines.append(f"{where + ': ' if where else ''}{problem}")
            continue
        file, _, line = where.rpartition(":") if where else (ref.name if ref.kind == "File" else "", "", "")
        path = root.rstrip("/") + "/" + file
        props = [f"file={_escape(path, property=True)}"] if file else []
        if line:
            props.append(f"line={line}")
        props.append(f"title={_escape(str(ref), property=True)}")
        lines.append(f"::{problem.severity} {','.join(props)}::{_escape(problem.message)}")
    return lines
