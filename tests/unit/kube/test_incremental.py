"""The incremental Translator gives exactly translate()'s answer after any sequence of changes,
and its Delta turns the previous version into the new one."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from passerelle.kube.incremental import Translator
from passerelle.kube.ingress import IngressOptions, translate
from passerelle.kube.ingress import Translator as FullTranslator
from passerelle.kube.placement import EntryPointInfo
from passerelle.kube.snapshot import ClusterSnapshot, key_of
from passerelle.model import DynamicConfig
from passerelle.model.delta import Delta

OPTIONS = IngressOptions(
    entrypoints=(EntryPointInfo(name="web", port=80), EntryPointInfo(name="websecure", tls=True, port=443))
)
# "a"/"b-x" and "a-b"/"x" make the same router base names: names are unique across Ingresses.
NAMESPACES = ("a", "a-b")
NAMES = ("x", "b-x", "y")
HOSTS = (None, "h1.test", "h2.test", "*.test")
PATHS = (
    ("/", "Prefix"),
    ("/p", "Prefix"),
    ("/p/", "Prefix"),
    ("/p", "Exact"),
    ("/q", "ImplementationSpecific"),
)
SERVICES = ("s1", "s2")
CREATED = (None, "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z")
ANNOTATIONS: tuple[dict[str, str], ...] = (
    {},
    {"passerelle.io/entrypoints": "websecure"},
    {"traefik.ingress.kubernetes.io/router.middlewares": "a-m@kubernetescrd"},
    {"passerelle.io/tls-options": "mtls"},
    {"passerelle.io/tls-options": "other"},
    {"traefik.ingress.kubernetes.io/router.tls.options": "a-o@kubernetescrd"},
    {"passerelle.io/cert-resolver": "le"},
    {"ingress.kubernetes.io/protocol": "h2c"},
)

Obj = dict[str, Any]


def backend(service: str, port: int | str) -> Obj:
    return {
        "service": {"name": service, "port": {"number": port} if isinstance(port, int) else {"name": port}}
    }


@st.composite
def ingresses(draw: st.DrawFn) -> Obj:
    namespace, name = draw(st.sampled_from(NAMESPACES)), draw(st.sampled_from(NAMES))
    rules = []
    for _ in range(draw(st.integers(0, 2))):
        paths = [
            {"path": path, "pathType": kind, "backend": backend(draw(st.sampled_from(SERVICES)), draw(st.sampled_from((80, "http", 81))))}
            for path, kind in draw(st.lists(st.sampled_from(PATHS), min_size=1, max_size=2))
        ]  # fmt: skip
        host = draw(st.sampled_from(HOSTS))
        rules.append({"host": host, "http": {"paths": paths}} if host else {"http": {"paths": paths}})
    spec: Obj = {"rules": rules}
    if draw(st.booleans()) or not rules:
        spec["defaultBackend"] = backend(draw(st.sampled_from(SERVICES)), 80)
    if draw(st.integers(0, 4)) == 0:
        spec["tls"] = [{"hosts": ["h1.test"], "secretName": "missing"}]
    if draw(st.integers(0, 9)) == 0:
        spec["rules"] = [
            {"http": {"paths": [{"path": "/", "pathType": "Bogus", "backend": backend("s1", 80)}]}}
        ]
    meta: Obj = {
        "name": name,
        "namespace": namespace,
        "annotations": dict(draw(st.sampled_from(ANNOTATIONS))),
    }
    created = draw(st.sampled_from(CREATED))
    if created:
        meta["creationTimestamp"] = created
    if draw(st.integers(0, 9)) == 0:
        spec["ingressClassName"] = draw(st.sampled_from(("other", "passerelle")))
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


@st.composite
def services(draw: st.DrawFn) -> Obj:
    meta: Obj = {"name": draw(st.sampled_from(SERVICES)), "namespace": draw(st.sampled_from(NAMESPACES))}
    if draw(st.integers(0, 3)) == 0:
        meta["annotations"] = {"traefik.ingress.kubernetes.io/service.serversscheme": "h2c"}
    ports = draw(st.sampled_from(([{"name": "http", "port": 80}], [{"name": "web", "port": 81}])))
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {"ports": ports}}


@st.composite
def slices(draw: st.DrawFn) -> Obj:
    service = draw(st.sampled_from(SERVICES))
    meta = {
        "name": f"{service}-{draw(st.integers(0, 1))}",
        "namespace": draw(st.sampled_from(NAMESPACES)),
        "labels": {"kubernetes.io/service-name": draw(st.sampled_from(SERVICES))},
    }
    addresses = draw(st.lists(st.sampled_from(("10.0.0.1", "10.0.0.2", "10.0.0.3")), max_size=2))
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta,
        "ports": [{"name": "http", "port": 8080}], "endpoints": [{"addresses": [a]} for a in addresses],
    }  # fmt: skip


def middlewares() -> st.SearchStrategy[Obj]:
    spec = st.sampled_from(
        ({"redirectScheme": {"scheme": "https"}}, {"redirectScheme": {}}, {"stripPrefix": {}})
    )
    return spec.map(
        lambda s: {"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware",
                   "metadata": {"name": "m", "namespace": "a"}, "spec": s}
    )  # fmt: skip


def tls_options() -> st.SearchStrategy[Obj]:
    """The TLSOption an Ingress may name: valid, invalid, or valid only with a CA Secret that is
    never there (its last valid definition, if any, stays)."""
    spec = st.sampled_from(
        ({"minVersion": "VersionTLS13"}, {"minVersion": "bogus"}, {"clientAuth": {"secretNames": ["ca"]}}, {})
    )
    return spec.map(
        lambda s: {"apiVersion": "traefik.io/v1alpha1", "kind": "TLSOption",
                   "metadata": {"name": "o", "namespace": "a"}, "spec": s}
    )  # fmt: skip


def classes() -> st.SearchStrategy[Obj]:
    return st.sampled_from(("example.com/other", "passerelle.io/ingress-controller")).map(
        lambda controller: {
            "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "other", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
            "spec": {"controller": controller},
        }
    )  # fmt: skip


def secrets() -> st.SearchStrategy[Obj]:
    """The Secret Ingresses name in spec.tls: of the wrong type, or unreadable (each a Problem)."""
    return st.tuples(st.sampled_from(NAMESPACES), st.sampled_from(("Opaque", "kubernetes.io/tls"))).map(
        lambda t: {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "missing", "namespace": t[0]},
                   "type": t[1], "data": {"tls.crt": "bm90IGEgY2VydA==", "tls.key": "bm8ga2V5"}}
    )  # fmt: skip


objects = st.one_of(
    ingresses(),
    ingresses(),
    ingresses(),
    services(),
    slices(),
    middlewares(),
    classes(),
    secrets(),
    tls_options(),
)
# a step puts an object (replacing the one with its key) or deletes the object with that key,
# in a snapshot made anew or edited from the last one (ClusterSnapshot.edited: changes_since says
# what changed)
steps = st.lists(st.tuples(st.booleans(), objects, st.booleans()), min_size=1, max_size=25)


def applied(before: DynamicConfig, delta: Delta, after: DynamicConfig) -> None:
    """The Delta turns `before` into `after`, by name, and names each touched host's routers in order."""
    routers = {r.name: r for r in before.routers}
    for name in delta.removed_routers:
        del routers[name]
    routers.update((r.name, r) for r in delta.routers)
    assert routers == {r.name: r for r in after.routers}
    services = {s.name: s for s in before.services}
    for name in delta.removed_services:
        del services[name]
    services.update((s.name, s) for s in delta.services)
    assert services == {s.name: s for s in after.services}
    assert delta.middlewares == (before.middlewares != after.middlewares)
    assert delta.hosts is not None
    for host, names in delta.hosts.items():
        on_host = [r.name for r in after.routers if (r.host.lower() if r.host else None) == host]
        assert list(names) == on_host


_ROUTE_TO_S1 = {"service": {"name": "s1", "port": {"number": 80}}}
FOUND = [  # cases hypothesis found once, kept so that every run checks them
    [  # a/b-x and a-b/x both make `a-b-x-...` router names: the second must get -2 (kube/names.py)
        (False, {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                 "metadata": {"name": "b-x", "namespace": "a", "annotations": {}},
                 "spec": {"rules": [], "defaultBackend": _ROUTE_TO_S1}}),
        (False, {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                 "metadata": {"name": "x", "namespace": "a-b", "annotations": {}},
                 "spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": _ROUTE_TO_S1}]}}],
                          "defaultBackend": _ROUTE_TO_S1,  # on TLS entry points only: no claim in common
                          "tls": [{"hosts": ["h1.test"], "secretName": "missing"}]}}),
    ],
    [  # an IngressClass change translates everything again, but TLSOptions' last valid definitions stay
        (False, {"apiVersion": "traefik.io/v1alpha1", "kind": "TLSOption", "metadata": {"name": "o", "namespace": "a"},
                 "spec": {"minVersion": "VersionTLS13"}}),
        (False, {"apiVersion": "traefik.io/v1alpha1", "kind": "TLSOption", "metadata": {"name": "o", "namespace": "a"},
                 "spec": {"minVersion": "bogus"}}),
        (False, {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                 "metadata": {"name": "other", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
                 "spec": {"controller": "example.com/other"}}),
    ],
]  # fmt: skip


def consistent(config: DynamicConfig) -> None:
    """A version's own indexes (kept by DynamicConfig.edited as it edits one) are its contents'."""
    assert dict(config.services_by_name()) == {s.name: s for s in config.services}
    assert list(config.services_by_name()) == [s.name for s in config.services]
    assert config._uses == Counter(r.service for r in config.routers)


@settings(max_examples=200, deadline=None)
@given(steps)
@example([(delete, obj, False) for delete, obj in FOUND[0]])
@example([(delete, obj, False) for delete, obj in FOUND[1]])
def test_incremental_translation_is_the_full_translation(changes: list[tuple[bool, Obj, bool]]) -> None:
    translator = Translator(OPTIONS)
    full = FullTranslator(OPTIONS)  # the same memory: TLSOptions' last valid definitions
    cluster: dict[tuple[str, str, str], Obj] = {}
    previous: DynamicConfig | None = None
    snapshot = ClusterSnapshot()
    for delete, obj, edit in changes:
        key = key_of(obj)
        if delete:
            cluster.pop(key, None)
        else:
            cluster[key] = obj
        anew = ClusterSnapshot.of(cluster.values())  # unchanged objects stay the same objects
        if edit:
            snapshot = snapshot.edited([key], {} if delete else {key: obj})
            assert snapshot == anew
            assert all(snapshot.of_kind(kind) == anew.of_kind(kind) for kind, *_ in cluster)
        else:
            snapshot = anew
        got = translator.translate(snapshot)
        assert got == full.translate(snapshot)
        config = got[0]
        consistent(config)
        if previous is not None and translator.delta is not None:
            applied(previous, translator.delta, config)
        previous = config


def test_one_ingress_more_among_many_translates_only_it() -> None:
    def ingress(i: int) -> Obj:
        return {
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": f"i{i}"},
            "spec": {"rules": [{"host": f"h{i}.test", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": backend(f"s{i}", 80)}]}}]},
        }  # fmt: skip

    objects = [ingress(i) for i in range(200)]
    translator = Translator(OPTIONS)
    translator.translate(ClusterSnapshot.of(objects))
    built: list[str] = []
    real = translator._index.add

    def spy(fragment: Any) -> None:
        built.append(fragment.source)
        real(fragment)

    translator._index.add = spy  # type: ignore[method-assign]
    snapshot = ClusterSnapshot.of([*objects, ingress(1000)])
    assert translator.translate(snapshot) == translate(snapshot, OPTIONS)
    assert built == ["Ingress default/i1000"]
    delta = translator.delta
    assert delta is not None
    assert [r.name for r in delta.routers] == ["default-i1000-h1000-test"]
    assert [s.name for s in delta.services] == ["default/s1000:80"]
    assert delta.hosts == {"h1000.test": ("default-i1000-h1000-test",)}


def test_a_fault_in_the_bookkeeping_translates_everything_again(caplog: Any) -> None:
    def ingress(i: int) -> Obj:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": f"i{i}"},
                "spec": {"defaultBackend": backend("s", 80)}}  # fmt: skip

    translator = Translator(OPTIONS)
    translator.translate(ClusterSnapshot.of([ingress(1)]))
    translator._index.fragments.clear()  # lose track of what was translated
    snapshot = ClusterSnapshot.of([ingress(1), ingress(2)])
    assert translator.translate(snapshot) == translate(snapshot, OPTIONS)
    assert "translating every Ingress again" in caplog.text
    assert translator.delta is None  # workers get the whole version
