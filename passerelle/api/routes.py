"""The API's paths -> handlers, over what the control plane holds (applied and latest versions).

`api_routes` returns a plain dict, so app.py (or another component: metrics) adds a path with one
entry. A `VersionView` is rendered per pair of (applied version, latest translation) and kept until
either changes, so a dashboard polling every few seconds costs one dict lookup a request. `explain`
compiles the applied version's route tables once per applied version (problems changing do not
rebuild them), in a thread, so a version of 10,000 routers does not hold up the event loop that
serves the workers and the API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from importlib import resources
from typing import Any

from passerelle import __version__
from passerelle.api.context import Context
from passerelle.api.explain import Explainer, ExplainError, Question, parse_header
from passerelle.api.server import Answer, Handler, Request
from passerelle.api.views import PageError, VersionView, page, problem_json
from passerelle.control.watcher import Version
from passerelle.model import codec

DASHBOARD_FILES = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
# The page loads only its own files and calls only this API; user-written names are shown as text.
DASHBOARD_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'none'",
    ),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
)


Render = Callable[[VersionView], list[dict[str, Any]]]


class _Views:
    """The VersionView of the newest (applied, latest) pair, made when one of them changes."""

    def __init__(
        self, applied: Callable[[], Version | None], latest: Callable[[], Version | None], context: Context
    ) -> None:
        self._applied = applied
        self._latest = latest
        self._context = context
        self._key: tuple[Version | None, Version | None] = (None, None)
        self._view: VersionView | None = None

    def get(self) -> VersionView | None:
        applied, latest = self._applied(), self._latest()
        if applied is None:
            return None
        if self._view is None or self._key[0] is not applied or self._key[1] is not latest:
            problems = latest.problems if latest is not None else applied.problems
            origins = latest.origins if latest is not None else applied.origins
            self._view = VersionView(
                number=applied.number,
                config=applied.config,
                problems=problems,
                origins=origins,
                context=self._context,
            )
            self._key = (applied, latest)
        return self._view


class _Explainers:
    """The applied version's Explainer, built in a thread on first use, once per applied version."""

    def __init__(self, context: Context) -> None:
        self._context = context
        self._version: Version | None = None
        self._built: asyncio.Future[Explainer] | None = None

    async def get(self, version: Version) -> Explainer:
        if self._built is None or self._version is not version:
            self._version = version
            self._built = asyncio.ensure_future(
                asyncio.to_thread(Explainer, version.config, self._context, origins=version.origins)
            )
        return await asyncio.shield(self._built)  # a question given up on does not stop the build


def api_routes(
    *,
    applied: Callable[[], Version | None],
    latest: Callable[[], Version | None],
    workers: Callable[[], list[dict[str, Any]]],
    context: Context,
    dashboard: bool = True,
) -> dict[str, Handler]:
    """applied: the version every worker serves; latest: the newest translation (its problems)."""
    views = _Views(applied, latest, context)
    explainers = _Explainers(context)

    def listing(render: Render, what: str) -> tuple[Handler, Handler]:
        def items() -> list[dict[str, Any]]:
            view = views.get()
            return render(view) if view is not None else []

        def all_(request: Request) -> Answer:
            try:
                chosen, next_page = page(
                    items(),
                    search=request.arg("search"),
                    status=request.arg("status"),
                    number=request.arg("page"),
                    per_page=request.arg("per_page"),
                )
            except PageError as e:
                return Answer.error(400, str(e))
            return Answer.json(chosen, headers=(("X-Next-Page", str(next_page)),))

        def one(request: Request) -> Answer:
            found = next((item for item in items() if item["name"] == request.tail), None)
            if found is None:
                return Answer.error(404, f"{what} not found: {request.tail}")
            return Answer.json(found)

        return all_, one

    def ping(_: Request) -> Answer:
        return Answer(200, b"OK") if applied() else Answer(503, b"no configuration applied yet\n")

    def rawdata(_: Request) -> Answer:
        version = applied()
        return Answer.json({"version": version.number, **codec.dump(version.config)} if version else {})

    def problems(_: Request) -> Answer:
        view = views.get()
        if view is None:  # nothing applied, yet translation may have found problems already
            version = latest()
            return Answer.json(
                [problem_json(p, version.origins) for p in version.problems] if version else []
            )
        return Answer.json(view.problems())

    def simple(render: Render) -> Handler:
        def handler(_: Request) -> Answer:
            view = views.get()
            return Answer.json(render(view) if view is not None else [])

        return handler

    def overview(_: Request) -> Answer:
        view = views.get()
        if view is None:
            return Answer.error(503, "no configuration applied yet")
        return Answer.json({**view.overview(), "features": {"dashboard": dashboard}})

    def explain(request: Request) -> Answer:
        version = applied()
        if version is None:
            return Answer.error(503, "no configuration applied yet")
        url = request.arg("url")
        if not url:
            return Answer.error(400, "explain needs ?url=http(s)://host/path")
        try:
            question = Question(
                url=url,
                method=request.arg("method", "GET"),
                headers=tuple(parse_header(h) for h in request.query.get("header", [])),
                entrypoint=request.arg("entrypoint"),
            )
        except ExplainError as e:
            return Answer.error(400, str(e))

        async def answer() -> Answer:
            explainer = await explainers.get(version)  # built in a thread, once per version
            try:
                return Answer.json({"version": version.number, **explainer.explain(question)})
            except ExplainError as e:
                return Answer.error(400, str(e))

        return Answer.after(answer())

    routes: dict[str, Handler] = {
        "/ping": ping,
        "/api/version": lambda _: Answer.json({"version": __version__}),
        "/api/rawdata": rawdata,
        "/api/workers": lambda _: Answer.json(workers()),
        "/api/overview": overview,
        "/api/entrypoints": simple(VersionView.entrypoints),
        "/api/problems": problems,
        "/api/tls/certificates": simple(VersionView.certificates),
        "/api/explain": explain,
    }
    lists = {
        "routers": VersionView.routers,
        "services": VersionView.services,
        "middlewares": VersionView.middlewares,
    }
    for kind, render in lists.items():
        routes[f"/api/http/{kind}"], routes[f"/api/http/{kind}/"] = listing(render, kind[:-1])
    if dashboard:
        routes.update(dashboard_routes())
    return routes


def dashboard_routes() -> dict[str, Handler]:
    """`/dashboard/` and its files, read once from the package; `/` and `/dashboard` lead there."""
    folder = resources.files("passerelle.api") / "dashboard"
    files = {
        name: Answer(200, (folder / name).read_bytes(), kind, DASHBOARD_HEADERS)
        for name, kind in DASHBOARD_FILES.items()
    }
    to_dashboard = Answer(302, b"see /dashboard/\n", headers=(("Location", "/dashboard/"),))

    def serve(request: Request) -> Answer:
        return files.get(request.tail or "index.html") or Answer(404, b"404 page not found\n")

    return {"/": lambda _: to_dashboard, "/dashboard": lambda _: to_dashboard, "/dashboard/": serve}
