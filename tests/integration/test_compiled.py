"""The mypyc build as processes see it: routers run the compiled modules, and an edited source wins.

The suite runs after `pip install -e .`, which compiles the hot-path modules (setup.py), so the
routers the other integration tests start run them; this checks it, on a copy of the installed
package so that editing a source touches nothing else: fresh, a process imports the extensions;
with one source edited it imports every hot-path module from source and says why on stderr;
with PASSERELLE_COMPILED=0 it imports the sources and says nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import passerelle
from passerelle.compiled import MODULES, SWITCH, source_of

INSTALLED = Path(passerelle.__file__).parent
PROBE = f"""
import json, sys
import passerelle, {", ".join(MODULES)}
print(json.dumps({{"package": passerelle.__file__, "files": {{m: sys.modules[m].__file__ for m in {MODULES!r}}}}}))
"""


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    shutil.copytree(INSTALLED, tmp_path / "passerelle", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def probe(root: Path, **environ: str) -> tuple[dict[str, str], str]:
    env = {k: v for k, v in os.environ.items() if k != SWITCH} | {"PYTHONPATH": str(root), **environ}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["package"] == str(root / "passerelle" / "__init__.py")  # the copy, not the install
    return found["files"], done.stderr


def test_a_fresh_build_runs_compiled(copy: Path) -> None:
    files, stderr = probe(copy)
    assert all(not f.endswith(".py") for f in files.values()), files
    assert "from source" not in stderr


def test_an_edited_source_runs_every_hot_module_from_source_and_says_so(copy: Path) -> None:
    edited = MODULES[-1]
    source = source_of(edited, copy / "passerelle")
    source.write_text(source.read_text() + "\n# edited after the build\n")
    files, stderr = probe(copy)
    assert files == {m: str(source_of(m, copy / "passerelle")) for m in MODULES}
    assert "running the hot-path modules from source" in stderr and edited in stderr


def test_the_switch_runs_the_sources_quietly(copy: Path) -> None:
    files, stderr = probe(copy, **{SWITCH: "0"})
    assert all(f.endswith(".py") for f in files.values()), files
    assert stderr == ""
