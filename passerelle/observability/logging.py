"""Application logs: one line per event on stderr, `time level logger message`."""

from __future__ import annotations

import logging
import sys


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("passerelle")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
