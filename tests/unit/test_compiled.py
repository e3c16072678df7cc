"""passerelle/compiled.py: which modules a process runs, the compiled ones or their sources.

Files only: a package tree of sources, stand-in extension files and a manifest in tmp_path. That
the real build is used, and an edited source replaces it, is tests/integration/test_compiled.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from passerelle import compiled
from passerelle.compiled import GROUP, MANIFEST, MODULES, SWITCH, SourceFinder, decide, record, source_of

SUFFIX = EXTENSION_SUFFIXES[0]


def built(package: Path) -> Path:
    """A package as setup.py leaves it: every source, its extension, the shared library, the record."""
    for module in MODULES:
        source = source_of(module, package)
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(f"NAME = {module!r}\n")
        source.with_name(source.stem + SUFFIX).write_bytes(b"")
    (package / (GROUP.rpartition(".")[2] + "__mypyc" + SUFFIX)).write_bytes(b"")
    (package / MANIFEST).write_text(json.dumps(record(package)))
    return package


def edit(package: Path) -> None:
    source = source_of(MODULES[0], package)
    source.write_text(source.read_text() + "# edited\n")


def unbuilt(package: Path) -> None:
    for path in compiled.extensions(package):
        path.unlink()


def without_manifest(package: Path) -> None:
    (package / MANIFEST).unlink()


def one_missing(package: Path) -> None:
    compiled.extensions(package)[0].unlink()


def manifest_of_another_list(package: Path) -> None:
    manifest = json.loads((package / MANIFEST).read_text())
    manifest["passerelle.proxy.gone"] = "0" * 64
    (package / MANIFEST).write_text(json.dumps(manifest))


def nothing(package: Path) -> None:
    pass


@pytest.mark.parametrize(
    ("change", "environ", "expected", "why"),
    [
        (nothing, {}, True, "compiled with mypyc"),
        (nothing, {SWITCH: "1"}, True, "compiled with mypyc"),
        (nothing, {SWITCH: "0"}, False, f"{SWITCH}=0"),
        (unbuilt, {}, False, "not compiled"),
        (edit, {}, False, f"changed since they were compiled: {MODULES[0]}"),
        (without_manifest, {}, False, f"{MANIFEST} is missing"),
        (one_missing, {}, False, "missing"),
        (manifest_of_another_list, {}, False, "passerelle.proxy.gone"),
    ],
)
def test_the_compiled_modules_run_only_when_built_from_the_sources_beside_them(
    tmp_path: Path,
    change: Callable[[Path], None],
    environ: dict[str, str],
    expected: bool,
    why: str,
) -> None:
    package = built(tmp_path / "passerelle")
    change(package)
    compiled_, reason = decide(package, environ)
    assert compiled_ is expected
    assert why in reason


def test_the_finder_takes_the_source_of_its_modules_only(tmp_path: Path) -> None:
    (tmp_path / "fast.py").write_text("")
    (tmp_path / ("fast" + SUFFIX)).write_bytes(b"")
    finder = SourceFinder(["pkg.fast"])
    spec = finder.find_spec("pkg.fast", [str(tmp_path)])
    assert spec is not None and spec.origin == str(tmp_path / "fast.py")
    assert finder.find_spec("pkg.other", [str(tmp_path)]) is None
    assert finder.find_spec("pkg.fast", None) is None  # a top-level name: never one of ours
