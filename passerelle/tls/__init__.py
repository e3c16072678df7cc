"""TLS: certificates, TLS options, the SNI dispatch of the data plane, and client-certificate headers.

`store.py` (pure) validates certificates and picks one by SNI name; `options.py` (pure) holds
Traefik's TLS option names and values; `contexts.py` builds `ssl.SSLContext`s and chooses one per
handshake in the worker; `dispatcher.py` is an entry point's listening context and SNI callback;
`openssl.py` is the one ctypes seam for what Python's `ssl` does not expose (per-connection verify
mode, verification without a CA, several curves, the ClientHello). docs/tls.md is the user's view.

Client certificates: `clientcert` holds the value a route carries (`ClientCertSpec`: which headers,
fields and compatibility level) and its three parsers (Traefik 1.7 annotation, Traefik 2/3
Middleware, passerelle's annotations); `certinfo` turns a spec and the peer chain (DER, leaf first)
into header lines, once per connection (DNs written as OpenSSL does by `dn.py`), and
`certinfo.STRIPPED` names every header any level may set, which the proxy removes from every
client request. All three are pure.
"""
