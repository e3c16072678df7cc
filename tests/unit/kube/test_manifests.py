"""The manifests provider's file handling: multi-document files, Lists, last-good per file and object."""

from __future__ import annotations

from pathlib import Path

from passerelle.kube.manifests import ManifestsProvider, parse_documents

SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\n"
INGRESS = (
    "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\n"
    "spec: {defaultBackend: {service: {name: s, port: {number: 80}}}}\n"
)


def test_multi_document_files_lists_and_lines() -> None:
    docs = parse_documents(
        f"{SERVICE}---\n# comment only\n---\nkind: List\nitems:\n- {{kind: A, metadata: {{name: a}}}}\n"
    )
    assert [(d["kind"], line) for d, line in docs] == [("Service", 1), ("A", 8)]


def test_json_files_are_read(tmp_path: Path) -> None:
    (tmp_path / "svc.json").write_text('{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "j"}}')
    (tmp_path / "notes.txt").write_text("kind: Service\nmetadata: {name: ignored}\n")
    (tmp_path / ".hidden.yaml").write_text("kind: Service\nmetadata: {name: hidden}\n")
    loaded = ManifestsProvider(tmp_path).load()
    assert [o["metadata"]["name"] for o in loaded.snapshot] == ["j"]


def test_a_broken_file_keeps_its_last_good_objects(tmp_path: Path) -> None:
    provider = ManifestsProvider(tmp_path)
    (tmp_path / "a.yaml").write_text(SERVICE)
    assert provider.load().snapshot.get("Service", "default", "s") is not None
    (tmp_path / "a.yaml").write_text("kind: [\n")
    loaded = provider.load()
    assert loaded.snapshot.get("Service", "default", "s") is not None
    [problem] = loaded.problems
    assert str(problem.ref) == "File a.yaml" and "line 2" in problem.message
    (tmp_path / "a.yaml").unlink()
    loaded = provider.load()
    assert len(loaded.snapshot) == 0 and loaded.problems == []


def test_an_invalid_ingress_keeps_its_last_valid_version(tmp_path: Path) -> None:
    provider = ManifestsProvider(tmp_path)
    (tmp_path / "i.yaml").write_text(INGRESS)
    assert provider.load().snapshot.get("Ingress", "default", "i") is not None
    (tmp_path / "i.yaml").write_text(INGRESS.replace("number: 80", "number: 80, name: both"))
    loaded = provider.load()
    kept = loaded.snapshot.get("Ingress", "default", "i")
    assert kept is not None and kept["spec"]["defaultBackend"]["service"]["port"] == {"number": 80}
    [problem] = loaded.problems
    assert "exactly one of `number` or `name`" in problem.message and "last valid version" in problem.message


def test_non_objects_and_duplicates_are_problems(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(f"just a string\n---\n{SERVICE}")
    (tmp_path / "b.yaml").write_text(SERVICE)
    loaded = ManifestsProvider(tmp_path).load()
    messages = sorted(p.message for p in loaded.problems)
    assert messages[0] == "defined twice; b.yaml:1 wins"
    assert "line 1: document 1 is not a Kubernetes object" in messages[1]
    assert loaded.origins[("Service", "default", "s")] == "b.yaml:1"


def test_a_missing_directory_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    loaded = ManifestsProvider(tmp_path / "nope").load()
    assert "manifests directory not found" in loaded.problems[0].message


def test_an_unchanged_directory_is_not_rebuilt(tmp_path: Path) -> None:
    provider = ManifestsProvider(tmp_path)
    (tmp_path / "a.yaml").write_text(SERVICE)
    assert provider._scan() is True
    assert provider._scan() is False  # polling an unchanged directory costs stat calls only
    (tmp_path / "a.yaml").write_text(SERVICE.replace("port: 80", "port: 81"))
    assert provider._scan() is True
    (tmp_path / "a.yaml").unlink()
    assert provider._scan() is True and provider._scan() is False
    tmp_path.rmdir()
    assert provider._scan() is True  # the directory went away
    assert "manifests directory not found" in provider._assemble().problems[0].message


def test_health_counts_unreadable_files_and_a_missing_directory(tmp_path: Path) -> None:
    provider = ManifestsProvider(tmp_path / "m")
    provider.load()
    assert provider.health == {"errors": 0, "up": False}
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.yaml").write_text("kind: [\n")
    provider.load()
    assert provider.health == {"errors": 1, "up": True}
    provider.load()  # unchanged: not read again, not counted again
    (tmp_path / "m" / "a.yaml").write_text("kind: [[\n")
    provider.load()
    assert provider.health == {"errors": 2, "up": True}


BAD_INGRESS = INGRESS.replace("number: 80", "number: 80, name: x")  # both a number and a name
STEPS: list[dict[str, str | None]] = [  # file -> its text (None: deleted), one reload per step
    {"a.yaml": SERVICE, "b.yaml": INGRESS},
    {"b.yaml": f"{INGRESS}---\n- not an object\n---\n{INGRESS}"},  # in-file duplicate, a bad document
    {"c.yaml": INGRESS.replace("name: i}", "name: j}")},
    {"c.yaml": SERVICE},  # the same key in two files: the later file wins, a Problem says so
    {"c.yaml": None},
    {"b.yaml": BAD_INGRESS},  # invalid: the last valid version keeps serving
    {"b.yaml": INGRESS.replace("name: s,", "name: t,")},
    {"a.yaml": None, "b.yaml": None},
]


def test_assembling_per_file_gives_what_assembling_everything_gives(tmp_path: Path) -> None:
    fast, slow = tmp_path / "fast", tmp_path / "slow"
    fast.mkdir(), slow.mkdir()
    quick, long = ManifestsProvider(fast), ManifestsProvider(slow)
    long._assemble_parts = lambda problems: None  # type: ignore[method-assign]  # always the long way
    previous, edits = None, 0
    for step in STEPS:
        for directory in (fast, slow):
            for name, text in step.items():
                if text is None:
                    (directory / name).unlink()
                else:
                    (directory / name).write_text(text)
        got, expected = quick.load(), long.load()
        assert dict(got.snapshot.objects) == dict(expected.snapshot.objects)
        for kind in ("Service", "Ingress"):
            assert got.snapshot.of_kind(kind) == expected.snapshot.of_kind(kind)
        assert [(str(p.ref), p.message.replace(str(slow), str(fast))) for p in expected.problems] == [
            (str(p.ref), p.message) for p in got.problems
        ]
        assert got.origins == expected.origins
        changes = got.snapshot.changes_since(previous.token) if previous is not None else None
        if changes is not None:  # edited from the last snapshot: what it says changed did
            assert previous is not None
            edits += 1
            for kind in ("Service", "Ingress"):
                before, now = previous.of_kind(kind), got.snapshot.of_kind(kind)
                removed, added = changes.get(kind, ((), ()))
                assert {id(o) for o in removed} == {id(o) for o in before} - {id(o) for o in now}
                assert {id(o) for o in added} == {id(o) for o in now} - {id(o) for o in before}
        previous = got.snapshot
    assert edits >= 3  # a file added, changed, deleted among others
