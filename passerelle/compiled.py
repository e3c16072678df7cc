"""The hot-path modules compiled with mypyc, and whether this process runs them or their source.

`setup.py` compiles the modules in MODULES into C extensions (one shared library, `_native__mypyc`,
plus a small extension per module, beside its source) and records each source's SHA-256 in
`compiled.json`. Python imports an extension before a .py of the same name, so a source edited
since the build would go on running its old compiled code. `choose()`, called by
`passerelle/__init__.py` before any of them is imported, compares the record with the sources: when
one differs, or `PASSERELLE_COMPILED=0` is set, a finder in front of the import system loads every
one of them from source, and a changed source is reported on stderr. All of them or none: compiled
modules call each other's functions and read each other's classes directly, not through the module
objects. Without a build (no extension present) nothing changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import EXTENSION_SUFFIXES, ModuleSpec
from importlib.util import spec_from_file_location
from pathlib import Path
from types import ModuleType

log = logging.getLogger("passerelle.compiled")

# What mypyc compiles, as module names. Keep in step with the modules they import from one another:
# a compiled module's calls into another one of these are C calls, into a plain module Python calls.
MODULES = (
    "passerelle.http.fasthead",
    "passerelle.http.headers",
    "passerelle.observability.recorder",
    "passerelle.proxy.balancer",
    "passerelle.proxy.connection",
    "passerelle.proxy.dataplane",
    "passerelle.proxy.deadlines",
    "passerelle.proxy.dispatch",
    "passerelle.proxy.options",
    "passerelle.proxy.upstream",
    "passerelle.routing.table",
)
GROUP = "passerelle._native"  # the shared library: passerelle/_native__mypyc.<abi>.so
MANIFEST = "compiled.json"  # {module: SHA-256 of its source}, written by setup.py
SWITCH = "PASSERELLE_COMPILED"  # "0": run the sources even when the compiled modules are fresh
PACKAGE = Path(__file__).resolve().parent


def source_of(module: str, package: Path = PACKAGE) -> Path:
    """passerelle.proxy.connection -> <package>/proxy/connection.py"""
    return package.joinpath(*module.split(".")[1:]).with_suffix(".py")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def record(package: Path = PACKAGE, modules: Sequence[str] = MODULES) -> dict[str, str]:
    """What setup.py writes to compiled.json as it compiles `modules`."""
    return {module: digest(source_of(module, package)) for module in modules}


def extensions(package: Path = PACKAGE, modules: Sequence[str] = MODULES) -> list[Path]:
    """The compiled files present: each module's, and the shared library."""
    found = []
    for module in (*modules, GROUP + "__mypyc"):
        base = package.joinpath(*module.split(".")[1:])
        found += [p for s in EXTENSION_SUFFIXES if (p := base.with_name(base.name + s)).exists()]
    return found


def changed(
    manifest: Mapping[str, str], package: Path = PACKAGE, modules: Sequence[str] = MODULES
) -> list[str]:
    """The modules whose source is not the one compiled (or that were not compiled at all)."""
    out = []
    for module in modules:
        source = source_of(module, package)
        if module not in manifest or not source.exists() or digest(source) != manifest[module]:
            out.append(module)
    return out


def decide(package: Path = PACKAGE, environ: Mapping[str, str] = os.environ) -> tuple[bool, str]:
    """(run the compiled modules?, why): pure apart from reading the files."""
    built = extensions(package)
    if not built:
        return False, "not compiled (no extension modules built)"
    if environ.get(SWITCH) == "0":
        return False, f"{SWITCH}=0"
    try:
        manifest = json.loads((package / MANIFEST).read_text())
    except (OSError, ValueError):
        return False, f"{MANIFEST} is missing or unreadable beside the extension modules"
    stale = changed(manifest, package)
    if stale:
        return False, "changed since they were compiled: " + ", ".join(stale)
    others = sorted(set(manifest) - set(MODULES))
    if others:  # setup.py removes old extensions, but a copied tree may hold some
        return False, "compiled, but no longer in passerelle.compiled.MODULES: " + ", ".join(others)
    if len(built) < len(MODULES) + 1:
        return False, "some extension modules are missing (a build that failed half-way?)"
    return True, f"compiled with mypyc ({len(MODULES)} modules)"


class SourceFinder(MetaPathFinder):
    """Finds MODULES as their .py files, ahead of the extensions beside them."""

    def __init__(self, modules: Sequence[str]) -> None:
        self.modules = frozenset(modules)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self.modules or not path:
            return None
        name = fullname.rpartition(".")[2] + ".py"
        for entry in path:
            candidate = os.path.join(entry, name)
            if os.path.isfile(candidate):
                return spec_from_file_location(fullname, candidate)
        return None


def _listed(package: Path) -> list[str]:
    try:
        return list(json.loads((package / MANIFEST).read_text()))
    except (OSError, ValueError):
        return []


def choose(package: Path = PACKAGE, environ: Mapping[str, str] = os.environ) -> tuple[bool, str]:
    """Make this process import the compiled modules or their sources (see the module docstring).

    Called once per process, before any of MODULES is imported; the import system's finders are
    process state by nature, so this is where passerelle changes them.
    """
    compiled, why = decide(package, environ)
    if not compiled and extensions(package):
        if not any(isinstance(f, SourceFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, SourceFinder([*MODULES, *_listed(package)]))
        if environ.get(SWITCH) != "0":
            log.warning(
                "running the hot-path modules from source, slower: %s; rebuild them with "
                "`.venv/bin/pip install -e .` (or ./scripts/test, ./scripts/quickstart)",
                why,
            )
    return compiled, why
