"""The database worker: one thread owns the SQLite connection; the event loop never touches it.

Trio tasks hand it jobs (`await worker.call(fn, *args)`); it runs whatever jobs are waiting in
one transaction, each in its own savepoint (a failing job rolls back alone), commits once for all
of them (group commit: one fsync for many messages), and only then wakes their tasks. A job's
`on_commit` callback runs in the Trio thread after the commit, even if its task was cancelled,
so what is committed is also published.

A job whose task is cancelled before the worker starts it is skipped: a request cut off at shutdown
is either answered or not executed. Once started, the caller waits for it (shielded) so that its
reply goes out with the commit.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import trio

from . import store
from .model import ChatError

log = logging.getLogger("hub.chat.db")

T = TypeVar("T")
MAX_BATCH = 256
WAL_CHECK_EVERY = 32  # batches between looks at the WAL's size


def storage_error(exc: BaseException) -> BaseException:
    """A database failure (full disk, read-only file, ...) as the chat's own error; other errors unchanged."""
    if isinstance(exc, sqlite3.Error):
        return ChatError(503, f"The chat database cannot be written right now: {exc}", "error-database-unavailable")
    return exc


@dataclass(eq=False)
class Job:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    on_commit: Callable[[Any], None] | None
    done: trio.Event = field(default_factory=trio.Event)
    result: Any = None
    error: BaseException | None = None
    cancelled: bool = False
    started: bool = False


class DatabaseWorker:
    """A dedicated thread running jobs against one SQLite connection, with group commit."""

    def __init__(self, path: str, **connect_options: Any) -> None:
        self.path = path
        self.connect_options = connect_options
        self._lock_fd: int | None = None
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self.batches = 0
        self.jobs = 0

    async def start(self) -> None:
        """Start the thread and open the database in it; raises what opening raised.

        While it runs, the worker holds a shared lock on `<database>.lock`: `hub chat restore` refuses then.
        """
        self._lock_fd = store.hold_lock(self.path, exclusive=False) if self.path != ":memory:" else None
        self._token = trio.lowlevel.current_trio_token()
        self._thread = threading.Thread(target=self._main, name=f"chat-db:{self.path}", daemon=True)
        self._thread.start()
        await trio.to_thread.run_sync(self._opened.wait)
        if self._open_error is not None:
            await trio.to_thread.run_sync(self._thread.join)
            raise self._open_error

    async def stop(self) -> None:
        """Finish the queued jobs, close the connection and end the thread."""
        if self._thread is None:
            return
        self._queue.put(None)
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self._thread.join)
        self._thread = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def call(self, fn: Callable[..., T], *args: Any, on_commit: Callable[[T], None] | None = None) -> T:
        """Run `fn(conn, *args)` in the worker; return its result once committed (or raise its error)."""
        if self._thread is None:
            raise RuntimeError("the chat database is not running")
        job = Job(fn, args, on_commit)
        self._queue.put(job)
        try:
            await job.done.wait()
        except trio.Cancelled:
            with self._lock:
                if not job.started:
                    job.cancelled = True
            if job.cancelled:
                raise
            with trio.CancelScope(shield=True):
                await job.done.wait()
            raise
        if job.error is not None:
            raise job.error
        return job.result

    # -- the thread ---------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            conn = store.connect(self.path, **self.connect_options)
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._open_error = exc
            self._opened.set()
            return
        self._opened.set()
        try:
            stopping = False
            while not stopping:
                first = self._queue.get()
                if first is None:
                    break
                jobs = [first]
                while len(jobs) < MAX_BATCH:
                    try:
                        job = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        stopping = True
                        break
                    jobs.append(job)
                self._run_batch(conn, jobs)
        finally:
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, jobs: list[Job]) -> None:
        self.batches += 1
        self.jobs += len(jobs)
        try:
            with self._lock:
                jobs = [job for job in jobs if not job.cancelled]
                for job in jobs:
                    job.started = True
            if not jobs:
                return
            conn.execute("BEGIN IMMEDIATE")
            for job in jobs:
                conn.execute("SAVEPOINT job")
                try:
                    job.result = job.fn(conn, *job.args)
                except Exception as exc:
                    job.error = storage_error(exc)
                    conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
            conn.execute("COMMIT")
            if self.batches % WAL_CHECK_EVERY == 0:
                self._bound_wal(conn)
        except Exception as exc:
            log.error("chat database transaction failed: %s", exc)
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            for job in jobs:
                job.error, job.result = job.error or storage_error(exc), None
        self._finish(jobs)

    def _bound_wal(self, conn: sqlite3.Connection) -> None:
        """Keep the WAL under journal_size_limit even when readers (CLI, backups) held back the automatic checkpoints."""
        limit = self.connect_options.get("journal_size_limit", 64 << 20)
        if store.wal_bytes(self.path) > limit:
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                log.warning("chat WAL checkpoint failed: %s", exc)

    def _finish(self, jobs: list[Job]) -> None:
        assert self._token is not None

        def wake() -> None:
            for job in jobs:
                if job.error is None and job.on_commit is not None:
                    try:
                        job.on_commit(job.result)
                    except Exception:
                        log.exception("chat on-commit callback failed")
                job.done.set()

        try:
            self._token.run_sync_soon(wake)
        except trio.RunFinishedError:
            pass
