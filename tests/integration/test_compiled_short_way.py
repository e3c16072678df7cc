"""The short way's differential tests against llhttp, run on the compiled modules.

The unit tests run the hot-path sources (tests/conftest.py). The scanner in http/fasthead.py is C
once compiled (native i64 indexes, checked casts), so its tests, the property tests against
llhttp included, run again here in a child pytest that imports the build, as `passerelle run`
does: `--noconftest` keeps tests/conftest.py from switching it to the sources.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHILD = """
import sys
import pytest
import passerelle.compiled
import passerelle.http.fasthead
compiled, why = passerelle.compiled.decide()
assert compiled, why
assert passerelle.http.fasthead.__file__.endswith(".so"), passerelle.http.fasthead.__file__
sys.exit(pytest.main(["-q", "--noconftest", "-p", "no:cacheprovider", *sys.argv[1:]]))
"""


def test_the_compiled_short_way_passes_the_same_tests() -> None:
    tests = ["tests/unit/http/test_fasthead.py", "tests/unit/proxy/test_short_way.py", "tests/unit/routing"]
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *tests], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout, done.stdout[-2000:]
