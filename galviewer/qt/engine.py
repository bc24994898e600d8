"""Batch ▸ Restore all on Dask: a LocalCluster or the scheduler named in the preferences, driven from the Qt event
loop through qasync (the distributed client's asyncio API; nothing blocks the window).

The sources are split into chunks of the survey's task (:func:`galviewer.survey.tasks.restore_chunk`: the one
pipeline, the model loaded once per worker), with the window's model and settings; the rows come back as the
in-process batch's do.  Progress counts chunks; Cancel (or a newer batch: the latest request wins) cancels the
pending tasks.  The engine is a preference (``prefs/batch_engine``): ``in-process`` (the default: the window's
worker threads), ``local`` (a LocalCluster kept for the session, one single-threaded worker per core) or a
scheduler address ``tcp://HOST:PORT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QInputDialog

from galviewer.errors import ParameterError

if TYPE_CHECKING:
    from galviewer.qt.main_window import MainWindow

__all__ = ["ENGINE_KEY", "ClusterEngine", "event_loop"]

ENGINE_KEY = "prefs/batch_engine"
IN_PROCESS, LOCAL = "in-process", "local"
CHUNK = 4  # sources per task: small, so that progress moves and a cancel stops soon


_LOOP: asyncio.AbstractEventLoop | None = None
_MAX_DELAY = (2**31 - 1) / 1000  # Qt timers take int milliseconds


def _loop_class() -> type:
    import qasync

    class QtLoop(qasync.QEventLoop):  # type: ignore[misc,name-defined]
        """qasync's loop, which fails on a callback scheduled at an infinite or very long delay (Qt timers are int
        milliseconds): distributed's ``asyncio.timeout(math.inf)`` raised OverflowError on every connection.
        Such a callback never fires within the session; it gets a handle that can be cancelled and never runs."""

        def call_later(self, delay: float, callback: Any, *args: Any, context: Any = None) -> Any:
            if delay > _MAX_DELAY:
                return asyncio.TimerHandle(self.time() + delay, callback, args, self, context=context)
            return super().call_later(delay, callback, *args, context=context)

    return QtLoop


def event_loop() -> asyncio.AbstractEventLoop:
    """The asyncio loop on the Qt event loop (qasync's): the running one, or the one made here on first use and
    set as the thread's loop (``run_app`` runs it; a test runs it with ``run_until_complete``)."""
    global _LOOP
    import qasync
    from PySide6.QtWidgets import QApplication

    with contextlib.suppress(RuntimeError):
        running = asyncio.get_running_loop()
        if isinstance(running, qasync.QEventLoop):
            return running
    if _LOOP is None or _LOOP.is_closed():
        _LOOP = _loop_class()(QApplication.instance())
        asyncio.set_event_loop(_LOOP)
    return _LOOP


def check_engine(text: str) -> str:
    """``in-process``, ``local`` or a ``tcp://``/``tls://`` address; anything else is refused by name."""
    text = text.strip()
    if text in (IN_PROCESS, LOCAL) or (text.startswith(("tcp://", "tls://", "ucx://")) and len(text) > 6):
        return text
    raise ParameterError("batch engine", f"{text!r}: use in-process, local or a scheduler address tcp://HOST:PORT")


class ClusterEngine:
    """The batch's Dask engine of one window (module docstring)."""

    def __init__(self, window: MainWindow) -> None:
        self.w = window
        self.task: asyncio.Task[Any] | None = None
        self.closing: asyncio.Task[Any] | None = None
        self._client: Any = None
        self._cluster: Any = None
        self._address = ""

    @property
    def name(self) -> str:
        """The engine the preferences name."""
        value = str(self.w.settings.value(ENGINE_KEY, IN_PROCESS) or IN_PROCESS)
        try:
            return check_engine(value)
        except ParameterError:
            return IN_PROCESS

    def choose(self) -> None:
        """Batch ▸ Engine…: ask which engine Restore all uses (kept in the preferences)."""
        items = [IN_PROCESS, LOCAL, "scheduler…"]
        current = self.name if self.name in items else "scheduler…"
        item, ok = QInputDialog.getItem(self.w, "Batch engine", "Restore all runs on:", items,
                                        items.index(current), False)
        if not ok:
            return
        if item == "scheduler…":
            address, ok = QInputDialog.getText(self.w, "Batch engine", "Dask scheduler address (tcp://HOST:PORT):",
                                               text=self.name if self.name.startswith("tcp") else "tcp://")
            if not ok:
                return
            item = address
        try:
            self.set(item)
        except ParameterError as exc:
            self.w.error_dialog("Batch engine", str(exc))

    def set(self, engine: str) -> None:
        """Use ``engine`` from now on (``in-process``, ``local`` or a scheduler address)."""
        self.w.settings.setValue(ENGINE_KEY, check_engine(engine))
        self.w.statusBar().showMessage(f"Restore all runs on: {self.name}", 5000)

    # ------------------------------------------------------------------ running
    def restore(self, image: Any, sources: Sequence[Any], pipe: Any) -> asyncio.Task[Any]:
        """Restore ``sources`` of ``image`` on the cluster; the rows go to the Sources table when done."""
        if self.task is not None and not self.task.done():
            self.task.cancel()  # the latest request wins
        specs = self._specs(image, sources, pipe)
        loop = event_loop()
        self.task = loop.create_task(self._run(specs, list(sources)))
        self.task.add_done_callback(self._done)
        self.w.progress.setRange(0, max(len(specs), 1))
        self.w.progress.setValue(0)
        self.w.progress.setVisible(True)
        self.w.cancel_button.setVisible(True)
        self.w.statusBar().showMessage(f"restoring {len(sources)} sources on {self.name} (starting)…")
        return self.task

    def cancel(self) -> None:
        """Cancel the running batch (its pending tasks on the cluster too)."""
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def _specs(self, image: Any, sources: Sequence[Any], pipe: Any) -> list[dict[str, Any]]:
        from galviewer.core.io.mosaic import Mosaic
        from galviewer.core.restore.batch import by_chip
        from galviewer.survey.tasks import source_row

        restorer = pipe.restorer
        if restorer is None or getattr(restorer, "model_path", None) is None:
            raise ParameterError("batch engine", "the model has no file the workers could load")
        if isinstance(image, Mosaic):  # sources between the chips: left out here, reported by _run
            chips, (groups, _) = image.chips, by_chip(image, sources)
        else:
            chips, groups = [image], {0: list(enumerate(sources))}
        specs = []
        for k, items in sorted(groups.items()):
            chip = chips[k]
            for j in range(0, len(items), CHUNK):
                part = items[j:j + CHUNK]
                specs.append({"path": str(chip.path), "ext": f"{chip.meta.extname},{chip.meta.extver}",
                              "model": str(restorer.model_path), "pipeline": dataclasses.asdict(pipe.config),
                              "threads": 1, "device": "cpu", "index": [i for i, _ in part],
                              "sources": [source_row(s) for _, s in part]})
        return specs

    async def _connect(self) -> Any:
        from distributed import Client

        from galviewer.survey.engine import start_local_cluster

        name = self.name
        if self._client is not None and self._address == name:
            return self._client
        await self.close()
        if name == LOCAL:
            n = os.cpu_count() or 1
            self._cluster = await start_local_cluster(n)
            self._client = await Client(self._cluster, asynchronous=True)
            await self._client.wait_for_workers(n)
        else:
            try:
                self._client = await Client(name, asynchronous=True, timeout="15s")
            except (OSError, TimeoutError) as exc:
                raise ParameterError("batch engine", f"cannot reach the scheduler {name}: {exc}") from None
        self._address = name
        return self._client

    async def _run(self, specs: list[dict[str, Any]], sources: list[Any]) -> list[Any]:
        from distributed import as_completed

        from galviewer.core.restore.batch import BETWEEN_CHIPS, BatchResult
        from galviewer.survey.tasks import restore_chunk

        n = len(sources)
        client = await self._connect()
        self.w.statusBar().showMessage(f"restoring {n} sources on {self.name} (dashboard {client.dashboard_link})…")
        futures = {client.submit(restore_chunk, spec, pure=False): spec for spec in specs}
        out: list[Any] = [None] * n
        done = 0
        try:
            async for fut in as_completed(list(futures)):
                for i, res in zip(futures[fut]["index"], await fut, strict=True):
                    out[i] = res
                done += 1
                self.w.progress.setValue(done)
        except asyncio.CancelledError:
            await client.cancel(list(futures))
            raise
        for i, res in enumerate(out):
            if res is None:  # as the in-process batch says it
                out[i] = BatchResult(sources[i], error=BETWEEN_CHIPS)
            else:
                res.source = sources[i]  # the canvas position of a mosaic's source
        return out

    def _done(self, task: asyncio.Task[Any]) -> None:
        if task is not self.task:
            return  # superseded: its result is stale
        self.w.progress.setVisible(False)
        self.w.cancel_button.setVisible(False)
        if task.cancelled():
            self.w.statusBar().showMessage("batch cancelled", 5000)
            return
        exc = task.exception()
        if exc is not None:
            self.w.error_dialog("Batch on the cluster failed", f"{type(exc).__name__}: {exc}")
            return
        self.w.batch.on_restored(task.result())

    def shutdown(self) -> None:
        """The window closes: cancel the batch and close the client and cluster (``closing`` is that task, which
        ``run_app`` waits for once the window is gone)."""
        self.cancel()
        if self._client is None and self._cluster is None:
            return
        loop = event_loop()
        if loop.is_running():
            self.closing = loop.create_task(self.close())
        else:  # Qt events spun outside asyncio (a test's qtbot): distributed's async calls need the loop running
            loop.run_until_complete(self.close())

    async def close(self) -> None:
        """Close the client (and the LocalCluster) this engine started."""
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        self._address = ""
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                await cluster.close()
