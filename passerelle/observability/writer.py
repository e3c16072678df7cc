"""Lines written in batches by a thread of their own, so the event loop never waits on a disk or a pipe.

The event loop appends lines to a list (no system call); the batch goes to the writer thread when
`buffering` lines are held, on a timer (`FLUSH_SECONDS`), and at close. The thread writes whole
lines only. Several workers write to the same file or pipe, so no line of one may land inside a line
of another: a regular file is opened with O_APPEND, whose writes the kernel serialises, and a pipe
(stdout under a container runtime) gets writes of at most PIPE_BUF bytes, which POSIX makes atomic;
only a single line longer than that can be split by another process's write. When the thread falls
behind by more than `MAX_PENDING` bytes (a stalled disk), new batches are dropped and counted.
`reopen` (SIGUSR1, for logrotate) makes the thread open the path anew after what it holds is
written, and put it in place of the old file's descriptor (`dup2`): no line is lost or split.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import stat
import threading
from collections.abc import Iterator

log = logging.getLogger("passerelle.accesslog")

FLUSH_SECONDS = 1.0
MAX_PENDING = 64 * 1024 * 1024
PIPE_BUF = 4096  # Linux's: select.PIPE_BUF


def chunks(data: bytes, *, limit: int) -> Iterator[bytes]:
    """`data` (whole lines) cut into pieces of whole lines of at most `limit` bytes where possible."""
    start = 0
    while len(data) - start > limit:
        cut = data.rfind(b"\n", start, start + limit) + 1
        if cut <= start:  # one line longer than the limit: it goes whole, alone
            cut = data.find(b"\n", start + limit) + 1 or len(data)
        yield data[start:cut]
        start = cut
    if start < len(data):
        yield data[start:]


class _Reopen:
    """Queued after the lines already handed over: the file is opened anew when they are written."""


_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


class LineWriter:
    def __init__(self, path: str, *, buffering: int, loop: asyncio.AbstractEventLoop) -> None:
        self._path = path
        if path:
            self._fd = os.open(path, _OPEN_FLAGS, 0o644)
            self._owned = True
        else:
            self._fd = 1  # stdout, shared with the other workers
            self._owned = False
        self._limit = 1 << 20 if stat.S_ISREG(os.fstat(self._fd).st_mode) else PIPE_BUF
        self._buffering = buffering
        self._lines: list[bytes] = []
        self._queue: queue.SimpleQueue[bytes | _Reopen | None] = queue.SimpleQueue()
        self._pending = 0  # bytes handed to the thread and not yet written
        self._pending_lock = threading.Lock()
        self.dropped = 0  # lines
        self._thread = threading.Thread(target=self._run, name="accesslog", daemon=True)
        self._thread.start()
        self._loop = loop
        self._timer: asyncio.TimerHandle | None = loop.call_later(FLUSH_SECONDS, self._tick)

    def append(self, line: bytes) -> None:
        """One line, newline included."""
        lines = self._lines
        lines.append(line)
        if len(lines) >= self._buffering:
            self.flush()

    def flush(self) -> None:
        lines = self._lines
        if not lines:
            return
        self._lines = []
        if self._pending > MAX_PENDING:
            self.dropped += len(lines)
            return
        data = b"".join(lines)
        with self._pending_lock:  # `-=` on the writer thread: a read-modify-write each, not atomic
            self._pending += len(data)
        self._queue.put(data)

    def reopen(self) -> None:
        """Write what is held to the current file, then open the path again (a no-op on stdout)."""
        if self._owned:
            self.flush()
            self._queue.put(_Reopen())

    def _tick(self) -> None:
        self.flush()
        self._timer = self._loop.call_later(FLUSH_SECONDS, self._tick)

    def close(self) -> None:
        """Write what is held and wait for the thread (at most a few seconds)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush()
        self._queue.put(None)
        self._thread.join(timeout=5)
        if self._owned:
            os.close(self._fd)
        if self.dropped:
            log.warning("access log: %d lines dropped, the output could not keep up", self.dropped)

    def _run(self) -> None:
        while True:
            data = self._queue.get()
            if data is None:
                return
            if isinstance(data, _Reopen):
                self._reopen()
                continue
            try:
                for piece in chunks(data, limit=self._limit):
                    view = memoryview(piece)
                    while view:
                        view = view[os.write(self._fd, view) :]
            except OSError as e:
                log.error("access log: cannot write: %s", e.strerror)
            with self._pending_lock:
                self._pending -= len(data)

    def _reopen(self) -> None:
        try:
            fresh = os.open(self._path, _OPEN_FLAGS, 0o644)
        except OSError as e:  # keep writing to the old file rather than lose lines
            log.error("access log: cannot reopen %s: %s", self._path, e.strerror)
            return
        os.dup2(fresh, self._fd, inheritable=False)
        os.close(fresh)
