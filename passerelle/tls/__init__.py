"""TLS: what passerelle does with certificates, apart from the handshake itself.

Client certificates (issue 4): `clientcert` holds the value object a route carries
(`ClientCertSpec`: which headers, which fields, which compatibility level) and the three parsers
that build it from an Ingress (Traefik 1.7 annotation, Traefik 2/3 Middleware, passerelle's own
annotations). `certinfo` turns a spec and the verified peer chain (DER, leaf first) into header
lines, once per connection; `certinfo.STRIPPED` names every header any level may set, which the
proxy removes from every client request. Both modules are pure: no sockets, no clock, no logging.
"""
