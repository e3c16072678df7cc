"""The Event plan: one Event per problem on an object, repeats bump it, a budget caps writes."""

from __future__ import annotations

import datetime

from passerelle.kube.events import Bump, Create, plan
from passerelle.kube.snapshot import ClusterSnapshot
from passerelle.model import ObjectRef, Problem, Severity

WALL = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
BAD = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "Ingress",
    "metadata": {"name": "bad", "namespace": "web", "uid": "u-1"},
}
GOOD = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "Ingress",
    "metadata": {"name": "good", "namespace": "web", "uid": "u-2"},
}
SNAPSHOT = ClusterSnapshot.of([BAD, GOOD])
MISSING = Problem(
    ref=ObjectRef(kind="Ingress", namespace="web", name="bad"), message='Service "app" not found'
)
WARN = Problem(
    ref=ObjectRef(kind="Ingress", namespace="web", name="bad"),
    message="unknown annotation x",
    severity=Severity.WARNING,
)
FILE = Problem(ref=ObjectRef(kind="File", name="x.yaml"), message="cannot be parsed")


def test_a_problem_becomes_one_event_on_its_object_and_nothing_else_gets_one() -> None:
    actions, sent = plan(
        [MISSING, WARN, FILE], SNAPSHOT, {}, now=0, wall=WALL, repeat=600, budget=10, instance="r1"
    )
    assert all(isinstance(a, Create) for a in actions) and len(actions) == 2
    bodies = {a.body["message"]: a.body for a in actions if isinstance(a, Create)}
    event = bodies['Service "app" not found']
    assert event["involvedObject"] == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "name": "bad",
        "namespace": "web",
        "uid": "u-1",
    }
    assert (event["type"], event["reason"], event["count"]) == ("Warning", "NotServed", 1)
    assert event["metadata"]["namespace"] == "web" and event["metadata"]["name"].startswith("bad.")
    assert bodies["unknown annotation x"]["reason"] == "ServedWithWarnings"
    assert len(sent) == 2


def test_the_same_problem_again_is_no_new_event_until_repeat_then_a_bump() -> None:
    _, sent = plan([MISSING], SNAPSHOT, {}, now=0, wall=WALL, repeat=600, budget=10)
    again, sent = plan([MISSING], SNAPSHOT, sent, now=300, wall=WALL, repeat=600, budget=10)
    assert again == []
    later, sent = plan([MISSING], SNAPSHOT, sent, now=601, wall=WALL, repeat=600, budget=10)
    assert len(later) == 1 and isinstance(later[0], Bump) and later[0].count == 2
    assert later[0].last == "2026-12-01T12:00:00Z"
    gone, sent = plan([], SNAPSHOT, sent, now=700, wall=WALL, repeat=600, budget=10)
    assert gone == [] and sent == {}  # fixed: forgotten; if it comes back it is a new Event


def test_the_budget_caps_writes_and_the_rest_waits() -> None:
    problems = [Problem(ref=MISSING.ref, message=f"problem {i}") for i in range(5)]
    first, sent = plan(problems, SNAPSHOT, {}, now=0, wall=WALL, repeat=600, budget=2)
    assert len(first) == 2 and len(sent) == 2
    second, sent = plan(problems, SNAPSHOT, sent, now=1, wall=WALL, repeat=600, budget=2)
    assert len(second) == 2 and len(sent) == 4
    assert {a.key for a in first}.isdisjoint(a.key for a in second)


def test_cluster_scoped_objects_get_their_events_in_default() -> None:
    ic = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "x"}}
    problem = Problem(ref=ObjectRef(kind="IngressClass", name="x"), message="bad")
    actions, _ = plan([problem], ClusterSnapshot.of([ic]), {}, now=0, wall=WALL, repeat=600, budget=1)
    assert isinstance(actions[0], Create) and actions[0].body["metadata"]["namespace"] == "default"
    assert "namespace" not in actions[0].body["involvedObject"]


def test_event_names_stay_valid_object_names() -> None:
    from passerelle.kube.events import NAME_MAX, event_name

    assert event_name("web", "0123456789") == "web.0123456789"
    long = event_name("a" * 250, "0123456789")
    assert len(long) == NAME_MAX and long.endswith(".0123456789")
    cut_at_dot = event_name("a" * 241 + "." + "b" * 20, "0123456789")
    assert len(cut_at_dot) <= NAME_MAX and ".." not in cut_at_dot
