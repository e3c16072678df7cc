"""passerelle: a Kubernetes ingress controller and edge router.

Providers turn Kubernetes objects into a neutral `DynamicConfig` (`passerelle.kube`), a watcher
aggregates and publishes versions (`passerelle.control`), and the data plane compiles each version
into route tables and proxies HTTP with it (`passerelle.routing`, `passerelle.proxy`).
"""

__version__ = "0.1.0"

from passerelle import compiled as _compiled  # noqa: E402 -- before any hot-path module is imported

_compiled.choose()
