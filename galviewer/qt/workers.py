"""The one worker abstraction of the GUI: background jobs with progress, cancel and "latest request wins".

A job is a plain function ``job(progress, cancelled) -> result`` run on a Qt thread pool.
``progress(done, total)`` reports progress; ``cancelled()`` is polled at safe points
(between tiles or batches — :class:`galviewer.core.restore.engine.Restorer` accepts it as
its ``cancel`` argument) and the job stops by raising
:class:`galviewer.errors.RestoreCancelled`.

Each :class:`JobRunner` has *channels* (e.g. ``"restore"``, ``"measure"``).  Submitting on a
channel cancels the running job of that channel and bumps its generation number; results,
progress and errors of any older generation are dropped, so a panel only ever shows the
answer to the latest request.  Errors are forwarded to one signal, never swallowed.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QEventLoop, QObject, QRunnable, QThreadPool, QTimer, Signal

from galviewer.errors import RestoreCancelled

__all__ = ["Job", "JobRunner"]

Progress = Callable[[int, int], None]
Cancelled = Callable[[], bool]


@dataclass
class Job:
    """A submitted job: its channel, generation and cancel flag."""

    channel: str
    generation: int
    cancel_event: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """Ask the job to stop at its next cancel point."""
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        """Whether cancel was requested."""
        return self.cancel_event.is_set()


class _Signals(QObject):
    # Only plain (str, int) arguments cross threads: Python objects travel through the outbox, because
    # queued signals carrying PyObjects have crashed PySide6 with reference-count errors.
    progress = Signal(str, int, int, int)  # channel, generation, done, total
    finished = Signal(str, int)


class _Runnable(QRunnable):
    def __init__(self, fn: Callable[[Progress, Cancelled], Any], job: Job, signals: _Signals,
                 outbox: dict[tuple[str, int], tuple[str, Any]], lock: threading.Lock) -> None:
        super().__init__()
        self.fn, self.job, self.signals, self.outbox, self.lock = fn, job, signals, outbox, lock
        self.setAutoDelete(True)

    def run(self) -> None:
        ch, gen = self.job.channel, self.job.generation
        try:
            value = self.fn(lambda d, t: self.signals.progress.emit(ch, gen, int(d), int(t)),
                            lambda: self.job.cancelled)
            outcome: tuple[str, Any] = ("cancelled", None) if self.job.cancelled else ("result", value)
        except RestoreCancelled:
            outcome = ("cancelled", None)
        except BaseException as exc:  # forwarded to the GUI's error handler, never swallowed
            exc.__traceback_text__ = traceback.format_exc()  # type: ignore[attr-defined]
            outcome = ("error", exc)
        with self.lock:
            self.outbox[(ch, gen)] = outcome
        self.signals.finished.emit(ch, gen)


class JobRunner(QObject):
    """Runs jobs in the background; only the latest job of each channel reports.

    Signals
    -------
    progress(channel, done, total)
    result(channel, value)
    error(channel, exception)
    cancelled(channel)
        A running job was cancelled by :meth:`cancel` (not when a newer job supersedes it).
    busy(channel, is_busy)
    """

    progress = Signal(str, int, int)
    result = Signal(str, object)
    error = Signal(str, object)
    cancelled = Signal(str)
    busy = Signal(str, bool)

    def __init__(self, parent: QObject | None = None, max_threads: int = 2) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self._signals = _Signals()
        self._signals.progress.connect(self._on_progress)
        self._signals.finished.connect(self._on_finished)
        self._outbox: dict[tuple[str, int], tuple[str, Any]] = {}
        self._lock = threading.Lock()
        self._current: dict[str, Job] = {}
        self._generation: dict[str, int] = {}
        self.dropped = 0  # stale results that were not delivered (for tests and diagnostics)

    def submit(self, channel: str, fn: Callable[[Progress, Cancelled], Any]) -> Job:
        """Run ``fn(progress, cancelled)`` in the background, superseding the channel's running job."""
        self._drop(channel)
        gen = self._generation.get(channel, 0) + 1
        self._generation[channel] = gen
        job = Job(channel, gen)
        self._current[channel] = job
        self.busy.emit(channel, True)
        self.pool.start(_Runnable(fn, job, self._signals, self._outbox, self._lock))
        return job

    def cancel(self, channel: str) -> None:
        """Cancel the channel's running job (its result, if any, is dropped) and emit ``cancelled``."""
        if self._drop(channel):
            self.cancelled.emit(channel)

    def _drop(self, channel: str) -> bool:
        job = self._current.pop(channel, None)
        if job is None:
            return False
        job.cancel()
        self.busy.emit(channel, False)
        return True

    def is_busy(self, channel: str) -> bool:
        """Whether the channel has a job whose answer is still awaited."""
        return channel in self._current

    def run_and_wait(self, channel: str, action: Callable[[], object], timeout_ms: int = 120_000) -> Any:
        """Call ``action`` (which submits work on ``channel``) and run a local event loop until that
        channel's answer arrives; for scripts that drive the window (screenshots, benchmarks), never for
        the GUI's own code, which must not wait.

        The listeners are connected before ``action`` runs, so a fast answer cannot be missed.

        Raises
        ------
        Exception
            The job's own exception when it failed.
        TimeoutError
            When no answer came within ``timeout_ms`` (or the job was cancelled).
        """
        loop, got = QEventLoop(), {}

        def done(ch: str, value: object) -> None:
            if ch == channel:
                got["value"] = value
                loop.quit()

        def failed(ch: str, exc: object) -> None:
            if ch == channel:
                got["error"] = exc
                loop.quit()

        timer = QTimer()
        timer.setSingleShot(True)
        timer.timeout.connect(loop.quit)
        self.result.connect(done)
        self.error.connect(failed)
        try:
            timer.start(timeout_ms)
            action()
            if not got:
                loop.exec()
        finally:
            timer.stop()
            self.result.disconnect(done)
            self.error.disconnect(failed)
        if "error" in got:
            raise got["error"] if isinstance(got["error"], BaseException) else RuntimeError(str(got["error"]))
        if "value" not in got:
            raise TimeoutError(f"no {channel!r} result within {timeout_ms} ms")
        return got["value"]

    def wait(self, msecs: int = 30000) -> bool:
        """Block until every job has finished (for shutdown and tests)."""
        return self.pool.waitForDone(msecs)

    def shutdown(self) -> None:
        """Cancel everything and wait for the threads."""
        for ch in list(self._current):
            self.cancel(ch)
        self.wait()

    def _latest(self, channel: str, gen: int) -> bool:
        job = self._current.get(channel)
        return job is not None and job.generation == gen

    def _on_progress(self, channel: str, gen: int, done: int, total: int) -> None:
        if self._latest(channel, gen):
            self.progress.emit(channel, done, total)

    def _on_finished(self, channel: str, gen: int) -> None:
        with self._lock:
            kind, value = self._outbox.pop((channel, gen))
        if not self._latest(channel, gen):
            self.dropped += kind == "result"
            return
        del self._current[channel]
        self.busy.emit(channel, False)
        if kind == "result":
            self.result.emit(channel, value)
        elif kind == "error":
            self.error.emit(channel, value)
        else:
            self.cancelled.emit(channel)
