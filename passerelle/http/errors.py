"""Canned responses the proxy writes itself: small, plain text, saying what went wrong."""

from __future__ import annotations

from http import HTTPStatus

NOT_FOUND_BODY = "404 page not found"  # Traefik's wording, which users and their tests know


def canned(status: int, detail: str = "", *, close: bool = False, head: bool = False) -> bytes:
    """A complete HTTP/1.1 response. `detail` defaults to the reason phrase; `head` omits the body."""
    reason = HTTPStatus(status).phrase
    body = ((detail or f"{status} {reason}") + "\n").encode()
    lines = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        "X-Content-Type-Options: nosniff",
    ]
    if close:
        lines.append("Connection: close")
    head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return head_bytes if head else head_bytes + body


NOT_FOUND = canned(404, NOT_FOUND_BODY)
