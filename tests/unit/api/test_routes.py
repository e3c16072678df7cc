"""The API's handlers called directly (no sockets): before and after a version, errors, the dashboard."""

from __future__ import annotations

import json
from typing import Any

import pytest

from passerelle.api.routes import api_routes
from passerelle.api.server import Answer, Request
from passerelle.control.watcher import Version
from passerelle.model import ObjectRef, Problem
from tests.unit.api.scene import CONTEXT, translated


class Holder:
    def __init__(self) -> None:
        self.applied: Version | None = None
        self.latest: Version | None = None


def routes(holder: Holder, dashboard: bool = True) -> dict[str, Any]:
    return api_routes(
        applied=lambda: holder.applied,
        latest=lambda: holder.latest,
        workers=lambda: [{"index": 0}],
        context=CONTEXT,
        dashboard=dashboard,
    )


def get(table: dict[str, Any], path: str, tail: str = "", **query: list[str]) -> Answer:
    answer: Answer = table[path](Request(method="GET", path=path, query=query, tail=tail))
    return answer


async def ask(table: dict[str, Any], **query: list[str]) -> Answer:
    """/api/explain, whose answer may come later (its tables are built in a thread)."""
    answer: Answer = table["/api/explain"](Request(method="GET", path="/api/explain", query=query))
    return answer if answer.later is None else await answer.later


def body(answer: Answer) -> Any:
    return json.loads(answer.body)


def version(number: int = 3) -> Version:
    config, problems = translated()
    return Version(number=number, config=config, problems=tuple(problems), origins={})


async def test_before_any_version() -> None:
    holder = Holder()
    table = routes(holder)
    assert get(table, "/ping").status == 503
    assert get(table, "/api/overview").status == 503
    assert (await ask(table, url=["http://a/"])).status == 503
    assert body(get(table, "/api/http/routers")) == [] and body(get(table, "/api/rawdata")) == {}
    holder.latest = Version(
        number=1, config=version().config, problems=(Problem(ref=ObjectRef(kind="File", name="x.yaml"), message="bad"),),
        origins={},
    )  # fmt: skip
    assert [p["object"] for p in body(get(table, "/api/problems"))] == [
        "File x.yaml"
    ]  # translated, not applied


def test_after_a_version() -> None:
    holder = Holder()
    holder.applied = holder.latest = version()
    table = routes(holder)
    assert get(table, "/ping").body == b"OK"
    assert body(get(table, "/api/overview"))["version"] == 3
    paged = get(table, "/api/http/routers", per_page=["4"])
    assert len(body(paged)) == 4 and ("X-Next-Page", "2") in paged.headers
    assert get(table, "/api/http/routers", per_page=["zero"]).status == 400
    one = get(table, "/api/http/services/", tail="default/web:http")
    assert body(one)["name"] == "default/web:http"
    missing = get(table, "/api/http/routers/", tail="nope")
    assert missing.status == 404 and body(missing) == {"message": "router not found: nope"}
    assert body(get(table, "/api/workers")) == [{"index": 0}]


def test_problems_follow_the_newest_translation() -> None:
    holder = Holder()
    holder.applied = version()
    holder.latest = Version(number=3, config=holder.applied.config, problems=(), origins={})
    assert body(get(routes(holder), "/api/problems")) == []


@pytest.mark.parametrize(
    ("query", "status", "text"),
    [
        ({}, 400, "explain needs ?url="),
        ({"url": ["ftp://x/"]}, 400, "http:// or https://"),
        ({"url": ["http://x/"], "header": ["bad"]}, 400, "must be Name:value"),
        ({"url": ["http://shop.example.com/cart"], "header": ["X-A: 1"], "method": ["post"]}, 200, '"proxy"'),
    ],
)
async def test_explain_questions(query: dict[str, list[str]], status: int, text: str) -> None:
    holder = Holder()
    holder.applied = holder.latest = version()
    answer = await ask(routes(holder), **query)
    assert answer.status == status and text in answer.body.decode()


def test_the_dashboard_files_and_their_headers() -> None:
    table = routes(Holder())
    index = get(table, "/dashboard/")
    assert index.content_type.startswith("text/html") and b'<script src="dashboard.js"' in index.body
    policy = dict(index.headers)["Content-Security-Policy"].split("; ")
    assert {"default-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'"} <= set(
        policy
    )
    assert get(table, "/dashboard/", tail="dashboard.js").content_type.startswith("text/javascript")
    assert get(table, "/dashboard/", tail="nope.js").status == 404
    assert dict(get(table, "/").headers)["Location"] == "/dashboard/"
    js = get(table, "/dashboard/", tail="dashboard.js").body.decode()
    # names from user objects are set as text only: no API that parses a string as HTML (the
    # browser test shows markup in a name as text; this keeps the sinks out of the code)
    sinks = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "DOMParser",
             "createContextualFragment", "srcdoc", "eval(", "new Function")  # fmt: skip
    assert [sink for sink in sinks if sink in js] == []
    assert "/dashboard/" not in routes(Holder(), dashboard=False)


async def test_explain_is_built_once_per_applied_version_in_a_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from passerelle.api import explain as explain_module

    built: list[tuple[int, bool]] = []
    real = explain_module.Explainer

    class Counting(real):  # type: ignore[valid-type,misc]
        def __init__(self, config: Any, context: Any, **kwargs: Any) -> None:
            built.append((id(config), threading.current_thread() is threading.main_thread()))
            super().__init__(config, context, **kwargs)

    monkeypatch.setattr("passerelle.api.routes.Explainer", Counting)
    holder = Holder()
    holder.applied = holder.latest = version()
    table = routes(holder)
    question = {"url": ["http://shop.example.com/cart"]}
    assert (await ask(table, **question)).status == 200
    holder.latest = Version(
        number=4, config=holder.applied.config, problems=(), origins={}
    )  # problems change
    assert (await ask(table, **question)).status == 200
    assert len(built) == 1 and built[0][1] is False  # once, and not on the event loop's thread
    holder.applied = holder.latest
    assert body(await ask(table, **question))["version"] == 4
    assert len(built) == 2
