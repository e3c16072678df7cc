"""TLS: certificates, TLS options and the SNI dispatch of the data plane.

`store.py` (pure) validates certificates and picks one by SNI name; `options.py` (pure) holds
Traefik's TLS option names and values; `contexts.py` builds `ssl.SSLContext`s and chooses one per
handshake in the worker; `openssl.py` is the one ctypes seam for what Python's `ssl` does not
expose (per-connection verify mode, verification without a CA). docs/tls.md is the user's view.
"""
