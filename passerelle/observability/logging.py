"""Application logs: one line per event on stderr, `time level logger message` or a JSON object.

`log.format: json` gives `{"time", "level", "logger", "message"}` (and `exception` with the
traceback), one object a line, for Fluentd and friends; the workers log the same way.
"""

from __future__ import annotations

import json
import logging
import sys

from passerelle.observability.accesslog import rfc3339


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(level: str, format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("passerelle")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
