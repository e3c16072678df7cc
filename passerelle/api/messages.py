"""What an API handler is given (`Request`) and gives (`Answer`), apart from the server's HTTP."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()
    later: Awaitable[Answer] | None = None  # the answer, still being made: the server awaits it

    @classmethod
    def after(cls, work: Awaitable[Answer]) -> Answer:
        """The answer `work` gives, for work kept off the event loop (in a thread): the server
        waits for it, and answers the requests pipelined behind it after it."""
        return cls(0, b"", later=work)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
        return cls(status, json.dumps(data, indent=2).encode() + b"\n", "application/json", headers)

    @classmethod
    def error(cls, status: int, message: str) -> Answer:
        """A JSON error body, `{"message": ...}`, as Traefik's API answers."""
        return cls.json({"message": message}, status)


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    method: str
    path: str  # as sent (percent-encoded), without the query
    query: Mapping[str, list[str]] = field(default_factory=dict)
    tail: str = ""  # for a prefix route: the percent-decoded rest of the path after the prefix

    def arg(self, name: str, default: str = "") -> str:
        """The first value of query parameter `name`."""
        values = self.query.get(name)
        return values[0] if values else default


Handler = Callable[[Request], Answer]
