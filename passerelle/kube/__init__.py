"""Kubernetes objects in, neutral configuration out.

`snapshot.py` holds an immutable set of objects (the only input to translation). `manifests.py`
builds snapshots from a directory of YAML/JSON, the laptop and test mode. `objects.py` reads an
Ingress of any served apiVersion into one normalized shape and applies the API server's validation,
`backends.py` resolves a Service port to ready endpoints, and `ingress.py` is the pure translation
`translate(snapshot, options) -> (DynamicConfig, problems)`.
"""
