"""Layered mappings hold what a dictionary edited the same way holds, and leave earlier ones be."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from passerelle.kube.layered import Layered

keys = st.integers(min_value=0, max_value=40)
edits = st.lists(  # (keys removed, keys set to the step's number)
    st.tuples(st.lists(keys, max_size=6), st.lists(keys, max_size=6)), min_size=1, max_size=60
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(keys, st.integers(), max_size=30), edits)
def test_edits_are_those_of_a_dictionary(
    start: dict[int, int], steps: list[tuple[list[int], list[int]]]
) -> None:
    layered, plain = Layered(dict(start)), dict(start)
    history = [(layered, dict(plain))]
    for number, (removed, upserted) in enumerate(steps):
        layered = layered.edited(removed, {k: number for k in upserted})
        for key in removed:
            plain.pop(key, None)
        plain.update((k, number) for k in upserted)
        history.append((layered, dict(plain)))
    for mapping, expected in history:  # every one, as it was made
        assert dict(mapping) == expected and len(mapping) == len(expected)
        assert mapping == expected
        for key in range(42):
            assert (key in mapping) == (key in expected)
            assert mapping.get(key, "none") == expected.get(key, "none")


def test_many_edits_make_it_flat_again() -> None:
    layered = Layered({i: i for i in range(1000)})
    for i in range(200):
        layered = layered.edited([i], {})
    assert len(layered._over) + len(layered._gone) <= 64  # flattened on the way
    assert dict(layered) == {i: i for i in range(200, 1000)}
    assert layered.flat() == dict(layered)
