"""Traefik 1.7's rule-type, rewrite-target, request-modifier and custom headers: what reaches the
backend, by applying the middlewares the annotations make to the head the proxy would send."""

from __future__ import annotations

import pytest

from passerelle.kube.annotations import read_annotations
from passerelle.kube.annotations.traefik17_paths import PathModifiers, path_middlewares
from passerelle.kube.ingress import _path_match
from passerelle.middlewares.headers import Headers

P = "ingress.kubernetes.io/"


def modifiers(annotations: dict[str, str]) -> PathModifiers:
    return read_annotations(annotations).traefik17.paths


def upstream_head(mods: PathModifiers, written: str, path_type: str, target: str, extra: str = "") -> str:
    """The request line and fields the backend gets for `target` on an Ingress path `written`."""
    match = _path_match(written, path_type, exact=mods.exact)
    head = f"GET {target} HTTP/1.1\r\nHost: a.test\r\n{extra}X-Forwarded-For: 10.0.0.9\r\n\r\n".encode()
    edits = [*path_middlewares(mods, written, match.value), *((mods.headers,) if mods.headers else ())]
    for edit in edits:
        head = edit.request.apply_to_head(head) if isinstance(edit, Headers) else edit.apply_to_head(head)
    return head.decode()


@pytest.mark.parametrize(
    ("annotations", "written", "target", "line", "fields"),
    [
        # PathPrefixStrip: the matched prefix goes, and is sent in X-Forwarded-Prefix as written
        ({"rule-type": "PathPrefixStrip"}, "/api", "/api/users?id=1", "GET /users?id=1", ["X-Forwarded-Prefix: /api"]),
        ({"rule-type": "PathPrefixStrip"}, "/api", "/api", "GET /", ["X-Forwarded-Prefix: /api"]),
        ({"rule-type": "PathPrefixStrip"}, "/api/", "/api/v1/x", "GET /v1/x", ["X-Forwarded-Prefix: /api/"]),
        ({"rule-type": "PathPrefixStrip"}, "/", "/x", "GET /x", ["X-Forwarded-Prefix: /"]),
        # PathStrip: an exact path, stripped to /
        ({"rule-type": "PathStrip"}, "/health", "/health", "GET /", ["X-Forwarded-Prefix: /health"]),
        # rewrite-target: the matched prefix replaced, the original path in X-Replaced-Path
        ({"rewrite-target": "/app/"}, "/shop", "/shop/cart?x", "GET /app/cart?x", ["X-Replaced-Path: /shop/cart"]),
        ({"rewrite-target": "/"}, "/shop", "/shop/cart", "GET /cart", ["X-Replaced-Path: /shop/cart"]),
        ({"rewrite-target": "/app"}, "/", "/cart", "GET /app/cart", ["X-Replaced-Path: /cart"]),
        # request-modifier, after the rule type's strip
        ({"request-modifier": "AddPrefix: /v2"}, "/", "/users", "GET /v2/users", []),
        ({"rule-type": "PathPrefixStrip", "request-modifier": "AddPrefix:/v2"}, "/api", "/api/u", "GET /v2/u",
         ["X-Forwarded-Prefix: /api"]),
        ({"request-modifier": "ReplacePath: /static/index.html"}, "/", "/anything?q", "GET /static/index.html?q",
         ["X-Replaced-Path: /anything"]),
        # custom headers: set (replacing the client's), an empty value removes; names canonicalised
        ({"custom-request-headers": "x-script-name:/app||X-Empty:||Via:passerelle"}, "/", "/x", "GET /x",
         ["X-Script-Name: /app", "Via: passerelle"]),
    ],
)  # fmt: skip
def test_what_the_backend_receives(
    annotations: dict[str, str], written: str, target: str, line: str, fields: list[str]
) -> None:
    mods = modifiers({P + k: v for k, v in annotations.items()})
    assert mods.error == ""
    extra = "X-Forwarded-Prefix: /spoofed\r\nX-Replaced-Path: /spoofed\r\nX-Empty: gone\r\nVia: client\r\n"
    head = upstream_head(mods, written, "ImplementationSpecific", target, extra)
    lines = head.split("\r\n")
    assert lines[0] == f"{line} HTTP/1.1"
    kept = [f for f in lines[1:] if f]
    assert "Host: a.test" in kept and "X-Forwarded-For: 10.0.0.9" in kept
    for field in fields:
        assert field in kept, (field, kept)
        assert sum(f.startswith(field.split(":")[0] + ":") for f in kept) == 1  # the client's went
    if "custom-request-headers" in annotations:
        assert "X-Empty: gone" not in kept and "Via: client" not in kept


@pytest.mark.parametrize(
    ("rule_type", "path_type", "exact"),
    [
        ("Path", "ImplementationSpecific", True),
        ("PathStrip", "ImplementationSpecific", True),
        ("PathPrefix", "ImplementationSpecific", False),
        ("Path", "Prefix", False),  # an explicit pathType says how it matches
        ("PathPrefix", "Exact", True),
    ],
)
def test_rule_type_decides_how_implementation_specific_paths_match(
    rule_type: str, path_type: str, exact: bool
) -> None:
    match = _path_match("/x/", path_type, exact=modifiers({P + "rule-type": rule_type}).exact)
    assert (match.type.value == "Exact") is exact


@pytest.mark.parametrize(
    ("annotations", "says"),
    [
        ({"rule-type": "Regexp"}, "rule-type 'Regexp' is not one of PathPrefix, Path, PathPrefixStrip, PathStrip"),
        ({"rule-type": "ReplacePath"}, "rule-type ReplacePath (deprecated in Traefik 1.7) is not supported"),
        ({"rule-type": "PathPrefixStrip", "rewrite-target": "/x"}, "rewrite-target must not be used together"),
        ({"rewrite-target": "x/y"}, "rewrite-target 'x/y' is not an absolute path"),
        ({"request-modifier": "ReplacePathRegex: ^/a(.*) /b$1"}, "ReplacePathRegex is not supported yet"),
        ({"request-modifier": "StripPrefix: /a"}, "request-modifier 'StripPrefix' is not AddPrefix or ReplacePath"),
        ({"request-modifier": "AddPrefix:"}, "is missing its type or value"),
        ({"custom-request-headers": "no colon here"}, "holds no Name:value entry"),
        ({"custom-response-headers": "Bad Name:x"}, "custom-response-headers: header name 'Bad Name' is not a field name"),
        ({"custom-request-headers": "X-A:line\u0001break"}, "must not hold control characters"),
    ],
)  # fmt: skip
def test_values_traefik_would_refuse_are_errors(annotations: dict[str, str], says: str) -> None:
    mods = modifiers({P + k: v for k, v in annotations.items()})
    assert says in mods.error, mods.error
    assert mods == PathModifiers(error=mods.error)  # nothing half-read is kept


def test_the_traefik_prefix_spelling_and_the_old_label_work_too() -> None:
    assert modifiers({"traefik.ingress.kubernetes.io/rule-type": "PathPrefixStrip"}).strip
    assert modifiers({"traefik.frontend.rule.type": "PathStrip"}).exact
    both = modifiers({P + "rule-type": "PathStrip", "traefik.ingress.kubernetes.io/rule-type": "Path"})
    assert both.strip and both.exact  # ingress.kubernetes.io/ wins, as in 1.7


def test_response_headers_edit_the_response() -> None:
    mods = modifiers({P + "custom-response-headers": "X-Frame-Options:DENY||Server:"})
    assert mods.headers is not None and not mods.headers.request
    fields = mods.headers.response.apply([(b"Server", b"nginx"), (b"Content-Type", b"text/plain")])
    assert fields == [(b"Content-Type", b"text/plain"), (b"X-Frame-Options", b"DENY")]


def test_redirect_regex_and_replacement_make_a_regex_redirect() -> None:
    v17 = read_annotations(
        {P + "redirect-regex": r"^http://old\.test/(.*)", P + "redirect-replacement": "https://new.test/$1",
         P + "redirect-permanent": "true"}
    ).traefik17  # fmt: skip
    assert v17.redirect_regex is not None and v17.redirect_regex.permanent
    assert v17.redirect_regex.location(b"http", b"old.test", b"/a?b") == "https://new.test/a?b"
    report = read_annotations({P + "redirect-regex": "^x", P + "redirect-replacement": "y"}).report.message()
    assert report is None  # both honoured


@pytest.mark.parametrize(
    ("annotations", "note"),
    [
        ({"redirect-regex": "^x", "redirect-replacement": "y", "redirect-entry-point": "https"},
         "ingress.kubernetes.io/redirect-regex (redirect-entry-point wins)"),
        ({"redirect-regex": "(", "redirect-replacement": "y"}, "ingress.kubernetes.io/redirect-regex (regex '(' does not compile"),
        ({"redirect-regex": "^x"}, "ingress.kubernetes.io/redirect-regex (only read with redirect-replacement)"),
    ],
)  # fmt: skip
def test_a_regex_redirect_that_cannot_be_made_is_reported_and_the_ingress_served(
    annotations: dict[str, str], note: str
) -> None:
    read = read_annotations({P + k: v for k, v in annotations.items()})
    assert read.traefik17.redirect_regex is None
    message = read.report.message()
    assert message is not None and note in message, message
