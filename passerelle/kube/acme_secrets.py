"""ACME records as Kubernetes Secrets and back, and the names of those Secrets and Leases (pure).

In the storage namespace, every Secret is labelled `passerelle.io/acme: account|certificate|
challenge` (one watch with that selector follows them all, and nothing else) and, but for
challenges, `passerelle.io/acme-resolver: <resolver>`:

    Secret passerelle-acme-account-<resolver>   Opaque: account.json (URL, key as a JWK, CA, e-mail)
    Secret passerelle-acme-<resolver>-<id>      kubernetes.io/tls: tls.crt (full chain), tls.key;
                                                annotations passerelle.io/acme-names (comma-separated),
                                                -not-after (RFC 3339), -renew-at / -ari-next (ARI)
    Secret passerelle-acme-challenge-<digest>   Opaque: challenge.json, label passerelle.io/acme-challenge
    Lease  passerelle-acme-<resolver>-<id>      held by the replica ordering that certificate
    Lease  passerelle-acme-<resolver>-account   held by the replica registering the account

`<id>` is records.certificate_id with dots as dashes (a DNS label), `<digest>` a digest of the
challenge's type and token or name (tokens hold characters a name may not).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import re
from typing import Any

from passerelle.acme.records import HTTP_01, Account, Challenge, StoredCertificate, parse_time
from passerelle.kube.tls import secret_data

Obj = dict[str, Any]
KIND = "passerelle.io/acme"  # label: account, certificate or challenge
RESOLVER = "passerelle.io/acme-resolver"
CHALLENGE_TYPE = "passerelle.io/acme-challenge"
NAMES = "passerelle.io/acme-names"
NOT_AFTER = "passerelle.io/acme-not-after"
RENEW_AT = "passerelle.io/acme-renew-at"
ARI_NEXT = "passerelle.io/acme-ari-next"
ACCOUNT, CERTIFICATE, CHALLENGE = "account", "certificate", "challenge"
_NOT_NAME = re.compile(r"[^a-z0-9-]+")


def object_name(*parts: str) -> str:
    """`passerelle-acme-<parts>` as a DNS label sequence (lower case, digits, '-')."""
    return _NOT_NAME.sub("-", "-".join(("passerelle-acme", *parts)).lower()).strip("-")[:253]


def account_secret(resolver: str) -> str:
    return object_name("account", resolver)


def certificate_secret(resolver: str, cert_id: str) -> str:
    return object_name(resolver, cert_id)


def lease_name(resolver: str, cert_id: str) -> str:
    """The Lease for ordering `cert_id` ("account": for registering the account)."""
    return object_name(resolver, cert_id)


def challenge_secret(challenge: Challenge) -> str:
    key = challenge.token if challenge.type == HTTP_01 else challenge.name
    return object_name("challenge", hashlib.sha256(f"{challenge.type}/{key}".encode()).hexdigest()[:24])


def _secret(
    name: str,
    kind: str,
    data: dict[str, str],
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    secret_type: str = "Opaque",
) -> Obj:
    meta: Obj = {"name": name, "labels": {KIND: kind, **(labels or {})}}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": secret_type,
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def _text(obj: Obj, key: str) -> str:
    data, error = secret_data(obj)
    if error is not None or key not in data:
        raise ValueError(error or f"no {key}")
    return data[key].decode()


def _labels(obj: Obj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def kind_of(obj: Obj) -> str:
    return _labels(obj).get(KIND, "")


def resolver_of(obj: Obj) -> str:
    return _labels(obj).get(RESOLVER, "")


def _time(value: datetime.datetime | None) -> str | None:
    return None if value is None else value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- records -> Secrets ----------------------------------------------------------------------------
def account_to_secret(resolver: str, account: Account) -> Obj:
    return _secret(
        account_secret(resolver),
        ACCOUNT,
        {"account.json": json.dumps(account.to_dict())},
        labels={RESOLVER: resolver},
    )


def certificate_to_secret(cert: StoredCertificate) -> Obj:
    annotations = {NAMES: ",".join(cert.names), NOT_AFTER: _time(cert.not_after) or ""}
    for key, value in ((RENEW_AT, cert.renew_at), (ARI_NEXT, cert.ari_next)):
        if value is not None:
            annotations[key] = _time(value) or ""
    return _secret(
        certificate_secret(cert.resolver, cert.id),
        CERTIFICATE,
        {"tls.crt": cert.cert_pem, "tls.key": cert.key_pem},
        labels={RESOLVER: cert.resolver},
        annotations=annotations,
        secret_type="kubernetes.io/tls",
    )


def challenge_to_secret(challenge: Challenge) -> Obj:
    return _secret(
        challenge_secret(challenge),
        CHALLENGE,
        {"challenge.json": json.dumps(challenge.to_dict())},
        labels={CHALLENGE_TYPE: challenge.type},
    )


# -- Secrets -> records (ValueError, KeyError or TypeError for one that is not ours to read) ------
def account_of(obj: Obj) -> Account:
    return Account.from_dict(json.loads(_text(obj, "account.json")))


def certificate_of(obj: Obj) -> StoredCertificate:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    names = tuple(n for n in str(annotations[NAMES]).split(",") if n)
    if not names:
        raise ValueError(f"{NAMES} is empty")
    return StoredCertificate.from_pem(
        resolver=resolver_of(obj),
        names=names,
        cert_pem=_text(obj, "tls.crt"),
        key_pem=_text(obj, "tls.key"),
        renew_at=parse_time(annotations.get(RENEW_AT)),
        ari_next=parse_time(annotations.get(ARI_NEXT)),
    )


def challenge_of(obj: Obj) -> Challenge:
    return Challenge.from_dict(json.loads(_text(obj, "challenge.json")))


def created(obj: Obj) -> datetime.datetime | None:
    """metadata.creationTimestamp, as the API server wrote it (None when absent or unreadable)."""
    try:
        return parse_time(str((obj.get("metadata") or {}).get("creationTimestamp") or ""))
    except ValueError:
        return None
