"""DynamicConfig.edited checks an edited version as a whole one is checked, by what changed."""

from __future__ import annotations

from typing import Any

import pytest

from passerelle.model import DynamicConfig, Router, Service, WeightedService

S1, S2, S3 = Service(name="s1"), Service(name="s2"), Service(name="s3")
A, B = Router(name="a", service="s1"), Router(name="b", service="s2")
BASE = DynamicConfig(routers=(A, B), services=(S1, S2))
C = Router(name="c", service="s3")


def edit(**changes: Any) -> DynamicConfig:
    args: dict[str, Any] = {
        "routers": BASE.routers,
        "services": dict(BASE.services_by_name()),
        "tls": BASE.tls,
        "dropped": (),
        "added": (),
        "changed_services": (),
        "removed_services": (),
    } | changes
    return BASE.edited(**args)


def test_an_edited_version_is_the_version_of_its_routers_and_services() -> None:
    edited = edit(
        routers=(A, C),
        services={"s1": S1, "s3": S3},
        dropped=(B,),
        added=(C,),
        changed_services=(S3,),
        removed_services=("s2",),
    )
    assert edited == DynamicConfig(routers=(A, C), services=(S1, S3))
    assert edited.service("s3") is S3
    assert edited._uses == {"s1": 1, "s3": 1}


BROKEN = [  # what a wrong edit says
    ({"routers": (A, B, C), "added": (C,)}, "unknown services: ['s3']"),  # s3 is not there
    (  # s2 goes, but b still uses it
        {"services": {"s1": S1}, "removed_services": ("s2",)},
        "unknown services: ['s2']",
    ),
    (  # s3 is new but not said to be
        {"services": {"s1": S1, "s2": S2, "s3": S3}},
        "do not make the new version's",
    ),
    (  # said gone, but still there
        {"removed_services": ("s2",)},
        "do not make the new version's",
    ),
    (
        {
            "routers": (A, B, Router(name="m", service="s1", middlewares=("x",))),
            "added": (Router(name="m", service="s1", middlewares=("x",)),),
        },
        "unknown middlewares: ['x']",
    ),
]


@pytest.mark.parametrize(("changes", "message"), BROKEN)
def test_an_edit_that_does_not_fit_is_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        edit(**changes)


def test_weighted_services_are_checked_whole() -> None:
    split = Service(name="w", weighted=(WeightedService(service="gone", weight=1),))
    with pytest.raises(ValueError, match="unknown services"):
        edit(services={"s1": S1, "s2": S2, "w": split}, changed_services=(split,))
