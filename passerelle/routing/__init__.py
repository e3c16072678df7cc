"""Request -> route, compiled once per configuration version, matched on every request.

`rules.py` states the matching semantics as plain functions (the reference the tests check the
compiled table against). `table.py` compiles a `DynamicConfig` into per-entry-point `RouteTable`s:
a dict of exact hosts, a dict of wildcard suffixes, the host-less routes, then the default backend.
Within a host, Exact paths are one dict lookup and Prefix paths are found by walking the request
path's ancestors (`/a/b/c`, `/a/b`, `/a`, `/`) through a dict, so the cost depends on the path's
depth, never on how many Ingresses exist.
"""
