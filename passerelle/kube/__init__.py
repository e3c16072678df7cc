"""Kubernetes objects in, neutral configuration out.

`snapshot.py` holds an immutable set of objects (the only input to translation). `manifests.py`
builds snapshots from a directory of YAML/JSON, the laptop and test mode. `objects.py` reads an
Ingress of any served apiVersion into one normalized shape and applies the API server's validation,
`backends.py` resolves a Service port to ready endpoints, and `ingress.py` is the pure translation
`translate(snapshot, options) -> (DynamicConfig, problems)`; `incremental.py` gives the same answer
snapshot after snapshot, translating only the Ingresses a change concerns, and says what changed.

The live provider: `client.py` is the one seam to the API (lightkube's configuration and auth,
JSON over its HTTP client), `kinds.py` the table of what is watched, `reflector.py` one collection
by list + watch, `watch.py` the provider that turns reflectors into snapshots. What writes back,
only on the leader of `lease.py`: `status.py` (Ingress status) and `events.py` (Problems as
Events); `rbac.py` lists every access, as deploy/10-rbac.yaml grants it. ACME's storage in Secrets:
`acme_secrets.py` (records <-> Secrets, pure) and `acme_store.py` (its watch, writes, Leases).
"""
