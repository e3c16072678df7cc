"""Workers answer pending ACME HTTP-01 tokens before any route or redirect, and nothing else."""

from __future__ import annotations

import asyncio

from passerelle.middlewares.redirect_scheme import RedirectScheme
from passerelle.model import DynamicConfig, Middleware, PathMatch, PathType, Router, Server, Service
from passerelle.proxy.dataplane import Dataplane
from passerelle.proxy.dispatch import dispatch
from passerelle.proxy.options import EntryPointOptions, ForwardingOptions

PREFIX = PathMatch(type=PathType.PREFIX, value="/")
REDIRECT = Middleware(name="to-https", spec=RedirectScheme(scheme="https", permanent=True))


def test_pending_tokens_are_answered_first_then_forgotten() -> None:
    loop = asyncio.new_event_loop()
    try:
        options = [
            EntryPointOptions(name="web", host="127.0.0.1", port=0),
            EntryPointOptions(
                name="other", host="127.0.0.1", port=0, redirect_scheme="https", redirect_port=443
            ),
        ]
        dataplane = Dataplane(options, ForwardingOptions(), loop)
        dataplane.apply(
            DynamicConfig(
                routers=(
                    Router(name="a", service="s", host="a.test", path=PREFIX, middlewares=("to-https",)),
                ),
                services=(Service(name="s", servers=(Server(host="127.0.0.1", port=1),)),),
                middlewares=(REDIRECT,),
            )
        )
        web = dataplane.entrypoints["web"]
        target = b"/.well-known/acme-challenge/tok"
        dataplane.set_challenges({"type": "challenges", "entrypoints": ["web"], "http": {"tok": "tok.thumb"}})
        route, _, answer = dispatch(web, None, b"GET", target, b"a.test", b"")
        assert route is None and answer is not None
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\ntok.thumb")
        # Only on the challenge entry point, only for pending tokens, only GET.
        for entry, path, method in ((dataplane.entrypoints["other"], target, b"GET"), (web, target + b"x", b"GET"),
                                    (web, target, b"POST")):  # fmt: skip
            _, _, other = dispatch(entry, None, method, path, b"a.test", b"")
            assert other is not None and other.startswith((b"HTTP/1.1 301", b"HTTP/1.1 308")), other[:40]
        dataplane.set_challenges({"type": "challenges", "entrypoints": ["web"], "http": {}})
        assert web.challenges is None  # nothing pending: no lookup at all per request
        _, _, after = dispatch(web, None, b"GET", target, b"a.test", b"")
        assert after is not None and after.startswith(b"HTTP/1.1 301")
    finally:
        loop.close()
