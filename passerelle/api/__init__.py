"""The API: health, the applied configuration as JSON, explain, and the dashboard page.

Served by the control-plane process (never a worker) on `api.address`, loopback by default.
`server.py` is the small HTTP/1.1 server (GET/HEAD, bounded requests, keep-alive and pipelining
with backpressure) of `messages.py`'s requests and answers; `admission.py` says whom it answers
(the loopback Host check, the Host rules of RFC 9112, the connection limit, actions from this
host); `routes.py` maps paths to handlers over the applied version and the newest
translation (a plain dict: another component adds a path with one entry). `views.py`
renders a version in Traefik's shapes and `certificates.py` the certificates (pure);
`explain.py` answers what one request gets by compiling the version with the data plane's own
code (route tables, redirects, SNI table, dispatch's `decide`), and `reasons.py` says why the
other routers did not get it; `offline.py` builds the same views from files for `passerelle
explain`, and `text.py` prints an explanation. `dashboard/` is static HTML, CSS and JS fetched
from the API.
"""
