"""Middlewares: what a router does to a request besides proxying it, as pure value types.

A Middleware object (Traefik's CRD, `traefik.io/v1alpha1` or `traefik.containo.us/v1alpha1`) has
one key under `spec` naming its kind. `base.py` holds the registry from that key to a pure parser
(`from_middleware(spec) -> value`, raising ValueError phrased for the object's author) and the
`MiddlewareSpec` union of the values; each kind lives in its own module. Translation parses and
reports; the data plane compiles the values it knows (today: `redirectScheme`) into its routes.
"""
