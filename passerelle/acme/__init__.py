"""ACME (RFC 8555): certificates for the hosts Ingresses name, shared by every replica.

Translation says what is wanted (kube/acme.py: `TlsConfig.requests`). `plan.py` turns wanted
certificates, the stored ones and past failures into what to order now and when to look again
(pure). `store.py` keeps accounts, certificates and pending challenges where every replica reads
them (a directory here; Kubernetes Secrets in kube/acme_store.py, same interface) and serialises
ordering with a lock per certificate (flock, or a Lease). `ari.py` reads the CA's renewal
window. `protocol.py` speaks ACME through the `acme` library in a thread: account, order,
HTTP-01 or TLS-ALPN-01, finalize, download. `resolver.py` holds a resolver's settings, CA session
(its account registered once for every replica) and counters. `controller.py` runs it: it orders
one certificate at a time, publishes challenges to the storage and to this replica's workers,
hands stored certificates to the watcher (they join the next version's TLS state), and turns
failures into backoff and Problems. Workers answer challenges from what the channel brings (proxy/acme.py).
"""
