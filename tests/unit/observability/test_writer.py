"""LineWriter.reopen: what was written before goes to the rotated file, what follows to a new one."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from passerelle.observability.writer import LineWriter


def test_reopen_after_a_rename_writes_on_to_a_fresh_file(tmp_path: Path) -> None:
    log, rotated = tmp_path / "access.log", tmp_path / "access.log.1"
    loop = asyncio.new_event_loop()
    try:
        writer = LineWriter(str(log), buffering=100, loop=loop)
        writer.append(b"one\n")
        writer.flush()
        os.rename(log, rotated)  # logrotate's first step; the writer still holds the old file
        writer.append(b"two\n")  # held, not yet written: it belongs to the old file too
        writer.reopen()
        writer.append(b"three\n")
        writer.close()
    finally:
        loop.close()
    assert rotated.read_bytes() == b"one\ntwo\n"
    assert log.read_bytes() == b"three\n"
