"""Compiles passerelle's hot-path modules with mypyc when pip builds the package.

`pip install .` and `pip install -e .` (what ./scripts/test and ./scripts/quickstart run) both come
here through setuptools' build backend; pyproject.toml has the rest of the metadata. The modules
are listed in passerelle/compiled.py, which also checks at start-up that each compiled module is
built from the source beside it (benchmarks/README.md, "Compiled hot path"). PASSERELLE_COMPILE=0
builds without compiling (pure Python: no C compiler needed, slower data plane).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

from setuptools import setup

ROOT = Path(__file__).resolve().parent
PACKAGE = ROOT / "passerelle"
# setuptools runs this file for metadata too; only these commands produce extension modules
BUILDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install"}


def _compiled() -> ModuleType:
    """passerelle/compiled.py, loaded on its own: importing the package would run its __init__."""
    spec = importlib.util.spec_from_file_location("passerelle_compiled", PACKAGE / "compiled.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ext_modules() -> list[object]:
    if not BUILDS.intersection(sys.argv[1:]):
        return []
    compiled = _compiled()
    if "editable_wheel" in sys.argv and os.environ.get("PASSERELLE_COMPILE") != "0":
        fresh, _ = compiled.decide(PACKAGE, {})
        if fresh:  # the extensions beside the sources were built from them: `pip install -e .` again
            return []  # keeps them (setuptools never removes files from the tree)
    for old in compiled.extensions(PACKAGE):  # never leave an old build beside new sources
        old.unlink()
    manifest = PACKAGE / compiled.MANIFEST
    manifest.unlink(missing_ok=True)
    if os.environ.get("PASSERELLE_COMPILE") == "0":
        return []
    from mypyc.build import mypycify

    record = compiled.record(PACKAGE)
    paths = [str(compiled.source_of(m, PACKAGE).relative_to(ROOT)) for m in compiled.MODULES]
    build = ROOT / "build" / "mypyc"
    build.mkdir(parents=True, exist_ok=True)
    # Not pyproject's [tool.mypy] (strict, for the lint): pip builds in an environment without
    # passerelle's dependencies, whose types are then Any (compiled as Python calls, which calls
    # into them are anyway), and only the compiled modules' own errors matter here.
    config = build / "mypy.ini"
    config.write_text(
        "[mypy]\nignore_missing_imports = True\nfollow_imports = silent\n"
        f"cache_dir = {build / 'mypy-cache'}\n"
    )
    extensions = mypycify(
        [*paths, "--config-file", str(config)],
        group_name=compiled.GROUP,
        target_dir=str(build),
    )
    manifest.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return extensions


setup(ext_modules=ext_modules())
