"""The API listener: health (`/ping`) now; the JSON API, dashboard and metrics build on it.

It listens on loopback by default and is served by the control plane process, never by a worker,
so it reports what was applied rather than what a worker happens to hold.
"""
