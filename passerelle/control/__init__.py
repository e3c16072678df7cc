"""The control plane's core: turn provider output into published configuration versions.

`watcher.py` takes the newest snapshot from a provider, translates it, skips a result equal to the
live one, coalesces bursts (throttle), and hands each new version to the listeners (the data plane,
the API). A listener that fails leaves the previous version live and the failure logged.
"""
