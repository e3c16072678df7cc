"""The test process runs the hot-path modules from source; the routers it starts run what users run.

passerelle decides once per process, when the package is first imported, whether its hot-path
modules are the mypyc-compiled ones or their sources (passerelle/compiled.py). This process
imports it here with PASSERELLE_COMPILED=0, so the unit tests cover the pure-Python modules (what
runs without a build), then puts the environment back: the `passerelle run` processes the
integration harness starts import the compiled modules, as an installed passerelle does, and
tests/integration/test_compiled.py checks that they are there and fresh.
"""

from __future__ import annotations

import importlib
import os

_before = os.environ.get("PASSERELLE_COMPILED")
os.environ["PASSERELLE_COMPILED"] = "0"
importlib.import_module("passerelle")
if _before is None:
    del os.environ["PASSERELLE_COMPILED"]
else:
    os.environ["PASSERELLE_COMPILED"] = _before
