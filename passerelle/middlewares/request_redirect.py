"""requestRedirect: answer with a redirect to another scheme, host, port and/or path.

The Gateway API's RequestRedirect filter, and the general form of Traefik's redirectScheme and
redirectRegex. Translation settles every default before this value is made (HTTPRequestRedirectFilter):
`scheme` is the filter's or the listener's; `port` is the filter's, else the scheme's well-known
port when the filter names a scheme, else the listener's port. The Location leaves the port out
when it is the scheme's default (http 80, https 443). `host` None keeps the request's Host (its
port dropped); `path` None keeps the path; the query is always kept. The status is the filter's
(301, 302, 303, 307, 308; default 302), whatever the method.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

from passerelle.http.errors import canned
from passerelle.http.redirect import BAD_HOST, host_name, is_authority, path_of
from passerelle.middlewares.url_rewrite import PathRewrite, rewrite_target

STATUSES = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRedirect:
    kind: ClassVar[str] = "requestRedirect"

    scheme: str
    port: int
    host: str | None = None
    path: PathRewrite | None = None
    status_code: int = 302

    def __post_init__(self) -> None:
        if self.scheme not in _DEFAULT_PORTS:
            raise ValueError(f"scheme {self.scheme!r} must be http or https")
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} must be between 1 and 65535")
        if self.host is not None and not is_authority(self.host):
            raise ValueError(f"hostname {self.host!r} must be a host name")
        if self.status_code not in STATUSES:
            raise ValueError(
                f"statusCode {self.status_code} must be one of {', '.join(map(str, sorted(STATUSES)))}"
            )

    def status(self, method: bytes) -> int:
        """The status of the redirect, whatever the method (as http.redirect.Redirect.status)."""
        return self.status_code

    def location(self, host: bytes, target: bytes) -> bytes | None:
        """The Location for a request's Host header and request-target (absolute-form and `*` are
        taken as their path, as http.redirect.Redirect does); None for an unusable Host."""
        if target[:1] != b"/":
            target = path_of(target)
        if self.host is not None:
            name = self.host.encode()
        else:
            if not is_authority(host.decode("latin-1")):
                return None
            name = host_name(host)
        port = b"" if _DEFAULT_PORTS[self.scheme] == self.port else b":%d" % self.port
        if self.path is not None:
            target = rewrite_target(self.path, target)
        return b"%s://%s%s%s" % (self.scheme.encode(), name, port, target)

    def response(self, host: bytes, target: bytes, method: bytes) -> bytes:
        """The whole answer to a request."""
        location = self.location(host, target)
        if location is None:
            return canned(
                BAD_HOST, "cannot redirect: the Host header is not a host name", head=method == b"HEAD"
            )
        head = b"HTTP/1.1 %d %s\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % (
            self.status_code,
            HTTPStatus(self.status_code).phrase.encode(),
            location,
        )
        return head

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "port": self.port,
            "host": self.host,
            "path": None if self.path is None else self.path.to_dict(),
            "statusCode": self.status_code,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RequestRedirect:
        path = data["path"]
        return cls(
            scheme=data["scheme"],
            port=data["port"],
            host=data["host"],
            path=None if path is None else PathRewrite.from_dict(path),
            status_code=data["statusCode"],
        )
