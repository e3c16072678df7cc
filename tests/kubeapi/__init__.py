"""A small Kubernetes API server for tests: the real wire protocol over HTTP or HTTPS, in memory.

No real API server can run on the test machines, so the live provider, status writing, leader
election, Events (and later DNS sync and ACME Secret storage) are tested against this one. It
follows https://kubernetes.io/docs/reference/using-api/api-concepts/ for what a client can see:

- `resources.py`: the resource types served and the discovery documents (`/api`, `/apis`, ...).
- `selectors.py`: labelSelector (equality- and set-based) and fieldSelector (dotted paths).
- `store.py`: objects, one global resourceVersion, the event history watches replay from, its
  compaction (410 Gone), optimistic concurrency (409 Conflict) and the status subresource.
- `handlers.py`: the HTTP layer (list with limit/continue, chunked watch streams with bookmarks,
  create/update/patch/delete, bearer-token and client-certificate auth, RBAC-shaped rules).
- `server.py`: `KubeAPI`, the thread-safe handle tests use: start/stop/restart on the same port,
  inject errors, expire resourceVersions, read the request log.
"""

from tests.kubeapi.server import KubeAPI, Request
from tests.kubeapi.store import ApiError

__all__ = ["ApiError", "KubeAPI", "Request"]
