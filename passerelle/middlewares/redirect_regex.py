"""redirectRegex: redirect when the request's URL matches a regular expression.

Traefik's `redirectRegex` Middleware (`regex`, `replacement`, `permanent`) and Traefik 1.7's
`redirect-regex` + `redirect-replacement` annotations, as Traefik does them
(`pkg/middlewares/redirect`): the regex is matched against the whole URL, `scheme://host/path?query`
(the scheme of the entry point, the Host header as sent); when it matches, the URL with the match
replaced is the Location, with 302 for GET and 307 for other methods (301/308 when permanent).
A URL the regex does not match, or one the replacement leaves as it was, goes on to the route.

The replacement's references are Go's: `$1`, `${1}`, `${name}`, `$name`, and `$$` for a dollar.
The regex is RE2's, as Go's regexp is (the `google-re2` bindings): the same syntax as Traefik's,
and matching in time linear in the URL, so no pattern makes a request cost what a backtracking
engine would (`^(a+)+$`); a pattern RE2 refuses (back-references, look-arounds) is an error naming it. The check runs on the request as it came, before the route's path rewrites, whatever
its place in the chain (proxy/dispatch.py), as the allow list does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import re2  # type: ignore[import-untyped]

from passerelle.http.redirect import move_status, moved, status_line
from passerelle.middlewares.fields import object_of

_KEYS = frozenset({"regex", "replacement", "permanent"})
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a pattern it refuses is reported on its object, not on stderr
_GO_REFERENCE = re.compile(r"\$(?:\$|\{(\w+)\}|(\w+))")


def python_template(replacement: str, pattern: Any) -> str:
    """A Go regexp replacement (`$1`, `${name}`, `$$`) as a Python re template (`\\g<1>`). As in
    Go, a reference to a group the regex does not have stands for nothing."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(2)
        known = int(name) <= pattern.groups if name.isdigit() else name in pattern.groupindex
        return f"\\g<{name}>" if known else ""

    return _GO_REFERENCE.sub(one, replacement.replace("\\", "\\\\"))


@dataclass(frozen=True, slots=True, kw_only=True)
class RedirectRegex:
    kind: ClassVar[str] = "redirectRegex"

    regex: str
    replacement: str
    permanent: bool = False
    _pattern: Any = field(init=False, compare=False, repr=False)  # an re2 pattern (no type stubs)
    _template: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        try:
            pattern = re2.compile(self.regex, _OPTIONS)
        except re2.error as e:
            reason = e.args[0].decode() if e.args and isinstance(e.args[0], bytes) else str(e)
            raise ValueError(f"regex {self.regex!r} does not compile: {reason}") from None
        object.__setattr__(self, "_pattern", pattern)
        object.__setattr__(self, "_template", python_template(self.replacement, pattern))

    def location(self, scheme: bytes, host: bytes, target: bytes) -> str | None:
        """Where a request for this URL is sent, or None when the regex leaves it alone."""
        url = f"{scheme.decode()}://{host.decode('latin-1')}{target.decode('latin-1')}"
        if self._pattern.search(url) is None:
            return None
        new = self._pattern.sub(self._template, url, count=1)
        return new if new != url else None

    def status(self, method: bytes) -> int:
        return move_status(self.permanent, method)

    def answer(self, scheme: bytes, host: bytes, target: bytes, method: bytes) -> bytes | None:
        """The redirect for a request, or None when it goes on to the route."""
        location = self.location(scheme, host, target)
        if location is None:
            return None
        if any(c in location for c in "\r\n"):
            return None  # never split the response: such a URL goes on as if unmatched
        line = status_line(self.status(method))
        return moved(line, location.encode("latin-1", "replace"), head=method == b"HEAD")

    @classmethod
    def from_middleware(cls, spec: Any) -> RedirectRegex:
        """The value of a Middleware's `spec.redirectRegex`."""
        spec = object_of(spec, _KEYS, "with `regex` and `replacement`, and optionally `permanent`")
        regex, replacement = spec.get("regex"), spec.get("replacement")
        if not isinstance(regex, str) or not regex or not isinstance(replacement, str) or not replacement:
            raise ValueError("`regex` and `replacement` are required (strings)")
        permanent = spec.get("permanent", False)
        if not isinstance(permanent, bool):
            raise ValueError(f"`permanent` {permanent!r} must be true or false")
        return cls(regex=regex, replacement=replacement, permanent=permanent)

    def to_dict(self) -> dict[str, Any]:
        return {"regex": self.regex, "replacement": self.replacement, "permanent": self.permanent}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RedirectRegex:
        return cls(regex=data["regex"], replacement=data["replacement"], permanent=data["permanent"])
