"""The survey driver: every source of many files through the one pipeline, on Dask distributed.

One task per input file plans it (its chips and their sources: a catalogue's, or detected); one task per chunk of
``chunk_size`` sources restores and measures them and writes a chunk file (:mod:`galviewer.survey.chunks`).
The driver keeps a manifest (``survey.json``: the settings, each input's plan or why it failed), a run log
(``survey.log``) and, at the end, the catalogue of every source in Parquet and ECSV (``catalog.parquet``,
``catalog.ecsv``), built from the chunk files in plan order.

Nothing is lost: chunk files, the manifest and the catalogue are written atomically; a worker lost mid-chunk has
its chunk rerun elsewhere by the scheduler (the file it would have written is named by its input, chip and
number, so a rerun never duplicates it); ``resume=True`` plans and restores only what has no complete file; a file
that cannot be read fails alone and is named in the log; an interrupted run (Ctrl-C, cancel) leaves complete
files only.

The driver is a coroutine on the distributed client's asyncio API (:func:`survey_async`): the viewer runs it on
the Qt event loop through qasync; :func:`run_survey` runs it to completion for the command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import glob
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from galviewer.errors import ExportError, ImageLoadError, OutputExistsError, ParameterError

__all__ = ["MANIFEST", "NANNY_ENVIRON", "SurveyConfig", "SurveyReport", "expand_inputs", "local_cluster",
           "run_survey", "start_local_cluster", "survey_async", "worker_layout"]

MANIFEST, LOG = "survey.json", "survey.log"
FORMAT_VERSION = 1

Progress = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class SurveyConfig:
    """How a survey restores: the model, the pipeline's settings, the chunking and the detection.

    Parameters
    ----------
    model : str or None
        A shipped model's name or a checkpoint path (None: the shipped default).
    pipeline : mapping
        :class:`~galviewer.core.restore.pipeline.PipelineConfig` settings (the defaults where absent).
    chunk_size : int
        Sources per task and per chunk file (1–4096).
    dq_ignore, origin : int
        DQ bits that do not make a pixel bad; the origin of catalogues' x, y columns.
    nsigma, npixels, deblend, hot
        Detection settings (:func:`~galviewer.core.measure.detect.detect`) for inputs without a catalogue.

    Raises
    ------
    ParameterError
        Naming the setting that is out of range.
    """

    model: str | None = None
    pipeline: Mapping[str, Any] = field(default_factory=dict)
    chunk_size: int = 32
    dq_ignore: int = 0
    origin: int = 0
    nsigma: float = 3.0
    npixels: int = 10
    deblend: bool = True
    hot: bool = True

    def __post_init__(self) -> None:
        from galviewer.core.restore.pipeline import DEFAULTS

        if not (isinstance(self.chunk_size, int) and 1 <= self.chunk_size <= 4096):
            raise ParameterError("chunk_size", f"must be 1–4096 sources, got {self.chunk_size!r}")
        object.__setattr__(self, "pipeline", dataclasses.asdict(DEFAULTS.replace(**dict(self.pipeline))))
        if self.model is not None and Path(self.model).exists():
            object.__setattr__(self, "model", str(Path(self.model).resolve()))

    def settings(self) -> dict[str, Any]:
        """Everything that decides the outputs (the manifest's record; a resumed run must match it)."""
        return {"model": self.model, "pipeline": dict(self.pipeline), "chunk_size": self.chunk_size,
                "dq_ignore": self.dq_ignore, "origin": self.origin, "nsigma": self.nsigma, "npixels": self.npixels,
                "deblend": self.deblend, "hot": self.hot}


@dataclass
class SurveyReport:
    """What a survey did."""

    out: Path
    catalog: list[Path]
    sources: int = 0
    restored: int = 0
    chunks_run: int = 0
    chunks_skipped: int = 0
    failed_files: dict[str, str] = field(default_factory=dict)
    failed_chunks: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    sources_run: int = 0

    @property
    def sources_per_second(self) -> float:
        """Sources restored by this run per second of its wall-clock time."""
        return self.sources_run / self.seconds if self.seconds > 0 else float("nan")


def expand_inputs(patterns: Sequence[str], catalogs: Mapping[str, str] | None = None) -> list[tuple[str, str | None]]:
    """Files and globs → (absolute path, catalogue or None), in the order given, each file once.

    ``catalogs`` maps an input (as written, or its resolved path) to its catalogue.

    Raises
    ------
    ImageLoadError
        A pattern that matches no file, or a catalogue that does not exist (named).
    """
    catalogs = dict(catalogs or {})
    resolved_cats = {str(Path(k).resolve()): v for k, v in catalogs.items()}
    out: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    for pat in patterns:
        matches = sorted(glob.glob(pat)) if glob.has_magic(pat) else [pat]
        matches = [m for m in matches if Path(m).is_file()]
        if not matches:
            raise ImageLoadError(pat, "no such file" if not glob.has_magic(pat) else "the pattern matches no file")
        for m in matches:
            path = str(Path(m).resolve())
            if path in seen:
                continue
            seen.add(path)
            cat = catalogs.get(m) or resolved_cats.get(path)
            if cat is not None and not Path(cat).is_file():
                raise ImageLoadError(cat, f"catalogue of {m} not found")
            out.append((path, str(Path(cat).resolve()) if cat else None))
    unused = [k for k in catalogs if str(Path(k).resolve()) not in seen]
    if unused:
        raise ParameterError("--catalog", f"{unused[0]} is not one of the inputs")
    return out


def worker_layout(cores: int | None = None, workers: int | None = None) -> tuple[int, int]:
    """(workers, torch threads per worker) that do not oversubscribe ``cores`` (default: this machine's):
    one single-threaded worker per core unless ``workers`` is given, whose threads then share the cores."""
    cores = cores or os.cpu_count() or 1
    if workers is not None and workers < 1:
        raise ParameterError("--workers", f"must be at least 1, got {workers}")
    n = workers or cores
    return n, max(1, cores // n)


def _stems(inputs: Sequence[tuple[str, str | None]]) -> dict[str, str]:
    """A distinct file-name stem per input (``drz`` twice → ``drz`` and ``drz_2``)."""
    from galviewer._atomic import safe_label

    out, used = {}, set()
    for path, _ in inputs:
        base = safe_label(Path(path).name.split(".")[0])
        stem, k = base, 1
        while stem.lower() in used:
            k += 1
            stem = f"{base}_{k}"
        used.add(stem.lower())
        out[path] = stem
    return out


class _Run:
    """The state of one survey run: the manifest, the log, the report."""

    def __init__(self, inputs: Sequence[tuple[str, str | None]], out: Path, config: SurveyConfig, resume: bool,
                 progress: Progress | None) -> None:
        self.out, self.config, self.progress = out, config, progress or (lambda event: None)
        self.inputs, self.stems = list(inputs), _stems(inputs)
        self.report = SurveyReport(out, [])
        self.manifest = self._open(resume)

    def _open(self, resume: bool) -> dict[str, Any]:
        out, path = self.out, self.out / MANIFEST
        if out.exists() and not out.is_dir():
            raise ParameterError("--output", f"{out} is a file, not a folder")
        if path.exists():
            if not resume:
                raise OutputExistsError(out, f"holds a survey already ({MANIFEST}); pass --resume to complete it "
                                        "or choose another folder")
            try:
                manifest = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise ImageLoadError(path, f"the survey manifest cannot be read: {exc}") from exc
            old, new = manifest.get("settings", {}), self.config.settings()
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            if changed:
                raise ParameterError(changed[0], f"differs from the run being resumed in {out} "
                                     f"({old.get(changed[0])!r} there); resume with the same settings or use "
                                     "another folder")
            return manifest
        if out.exists() and not os.access(out, os.W_OK):
            raise ExportError(out, "the folder is not writable")
        if out.exists() and any(out.iterdir()):
            raise OutputExistsError(out, f"is not empty and holds no survey ({MANIFEST}); choose an empty or new "
                                    "folder")
        out.mkdir(parents=True, exist_ok=True)
        return {"galviewer_survey": FORMAT_VERSION, "settings": self.config.settings(), "inputs": {}}

    def save(self) -> None:
        from galviewer._atomic import atomic_write

        text = json.dumps(self.manifest, indent=1, allow_nan=True)
        atomic_write(self.out / MANIFEST, lambda tmp: tmp.write_text(text), overwrite=True)

    def log(self, line: str) -> None:
        with open(self.out / LOG, "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")

    def entry(self, path: str, catalog: str | None) -> dict[str, Any]:
        """The manifest's entry of an input; a changed file (size, mtime) or catalogue is planned again."""
        st = os.stat(path)
        ident = {"catalog": catalog, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        old = self.manifest["inputs"].get(path)
        if old is None or any(old.get(k) != v for k, v in ident.items()):
            old = {**ident, "plan": None, "error": ""}
            self.manifest["inputs"][path] = old
        return old

    def chunk_specs(self, path: str, plan: dict[str, Any], threads: int) -> list[dict[str, Any]]:
        """The chunks of a planned input, each with its file name (plan order)."""
        c, specs = self.config, []
        from galviewer.survey.tasks import chip_label

        for chip in plan["chips"]:
            src = chip["sources"]
            for k in range(0, len(src), c.chunk_size):
                name = f"{self.stems[path]}_{chip_label(chip['ext'])}_c{k // c.chunk_size:04d}.fits"
                specs.append({"path": path, "ext": chip["ext"], "sources": src[k:k + c.chunk_size],
                              "out": str(self.out / name), "model": c.model, "pipeline": dict(c.pipeline),
                              "dq_ignore": c.dq_ignore, "threads": threads, "device": "cpu"})
        return specs


async def survey_async(client: Any, inputs: Sequence[tuple[str, str | None]], out: str | os.PathLike[str],
                       config: SurveyConfig, *, threads: int = 1, resume: bool = False,
                       progress: Progress | None = None) -> SurveyReport:
    """Run a survey on an asynchronous ``distributed.Client`` (module docstring).

    Parameters
    ----------
    client : distributed.Client
        Created with ``asynchronous=True`` (a LocalCluster's or an existing scheduler's).
    inputs : sequence of (path, catalogue or None)
        From :func:`expand_inputs`.
    out : path-like
        The survey folder (new or empty; or the one being resumed).
    config : SurveyConfig
    threads : int
        Torch threads per task (:func:`worker_layout`).
    resume : bool
        Complete the survey in ``out``: plan and restore only what has no complete file.
    progress : callable(event), optional
        Called with ``{"kind": "planned", "file", "path", "sources", "chunks", "todo"}``, ``{"kind": "chunk",
        "file", "path", "sources", "seconds"}``, ``{"kind": "failed", "file", "path", "error"}`` and
        ``{"kind": "catalog", "paths"}`` (``file`` the input's name, ``path`` the input: two may share a name).

    Returns
    -------
    SurveyReport

    Raises
    ------
    OutputExistsError, ParameterError
        ``out`` holds something else, or a resumed survey's settings differ.
    asyncio.CancelledError
        When cancelled: the pending tasks are cancelled, complete files stay, the manifest and log say so.
    """
    from distributed import as_completed

    from galviewer.survey.catalog import write_catalog
    from galviewer.survey.tasks import plan_input, run_chunk

    run = _Run(inputs, Path(out), config, resume, progress)
    t0 = time.perf_counter()
    settings = config.settings()
    run.log(f"start: {len(inputs)} inputs, settings {json.dumps(settings)}" + (" (resumed)" if resume else ""))
    pending: dict[Any, tuple[str, str, Any]] = {}
    ac = as_completed()
    for path, cat in run.inputs:
        entry = run.entry(path, cat)
        if entry["plan"] is not None:
            _submit_chunks(run, client, ac, pending, path, entry["plan"], threads, run_chunk)
        else:
            fut = client.submit(plan_input, path, cat, settings, pure=False)
            pending[fut] = ("plan", path, None)
            ac.add(fut)
    run.save()
    try:
        async for fut in ac:
            kind, path, spec = pending.pop(fut)
            name = Path(path).name
            try:
                value = await fut
                if kind == "plan" and "error" in value:
                    raise _BadInput(value["error"])
            except Exception as exc:  # a bad file, a chunk whose workers died, a bug: named, the rest goes on
                reason = str(exc) if isinstance(exc, _BadInput) else f"{type(exc).__name__}: {exc}"
                if kind == "plan":
                    run.manifest["inputs"][path]["error"] = reason
                    run.report.failed_files[path] = reason
                    run.save()
                else:
                    run.report.failed_chunks[spec["out"]] = reason
                run.log(f"FAILED {kind} {path if kind == 'plan' else spec['out']}: {reason}")
                run.progress({"kind": "failed", "file": name, "path": path, "error": reason, "task": kind,
                              "sources": len(spec["sources"]) if spec else 0})
                continue
            if kind == "plan":
                run.manifest["inputs"][path].update(plan=value, error="")
                run.save()
                _submit_chunks(run, client, ac, pending, path, value, threads, run_chunk)
            else:
                run.report.chunks_run += 1
                run.report.sources_run += value["sources"]
                run.progress({"kind": "chunk", "file": name, "path": path, "sources": value["sources"],
                              "seconds": value["seconds"]})
    except asyncio.CancelledError:
        await client.cancel(list(pending))
        run.log(f"interrupted: {run.report.chunks_run} chunks written by this run; resume to complete")
        run.save()
        raise
    run.report.seconds = time.perf_counter() - t0
    from galviewer._atomic import sweep_folder

    for part in sweep_folder(run.out):  # a killed worker's unfinished chunk (its rerun wrote the chunk)
        run.log(f"removed {part.name}: the temporary file of a writer that was killed")
    loop = asyncio.get_running_loop()
    run.report.catalog = await loop.run_in_executor(None, write_catalog, run)
    run.progress({"kind": "catalog", "paths": [str(p) for p in run.report.catalog]})
    r = run.report
    run.log(f"done: {r.sources} sources ({r.restored} restored) in {len(r.catalog) and r.catalog[0].name}; "
            f"{r.chunks_run} chunks run, {r.chunks_skipped} complete before; {len(r.failed_files)} files and "
            f"{len(r.failed_chunks)} chunks failed; {r.seconds:.1f} s")
    return r


class _BadInput(Exception):
    """An input its plan task could not read (the reason is the task's)."""


def _submit_chunks(run: _Run, client: Any, ac: Any, pending: dict[Any, Any], path: str, plan: dict[str, Any],
                   threads: int, task: Callable[..., Any]) -> None:
    specs = run.chunk_specs(path, plan, threads)
    todo = [s for s in specs if not Path(s["out"]).is_file()]
    run.report.chunks_skipped += len(specs) - len(todo)
    run.progress({"kind": "planned", "file": Path(path).name, "path": path, "chunks": len(specs), "todo": len(todo),
                  "sources": sum(len(s["sources"]) for s in specs),
                  "todo_sources": sum(len(s["sources"]) for s in todo)})
    for spec in todo:
        fut = client.submit(task, spec, pure=False)
        pending[fut] = ("chunk", path, spec)
        ac.add(fut)


def run_survey(inputs: Sequence[tuple[str, str | None]], out: str | os.PathLike[str], config: SurveyConfig, *,
               scheduler: str | None = None, workers: int | None = None, memory_limit: str = "auto",
               resume: bool = False, progress: Progress | None = None) -> SurveyReport:
    """Run a survey to completion on a new LocalCluster or on the scheduler at ``scheduler``.

    ``workers`` and the torch threads of each follow :func:`worker_layout`; ``memory_limit`` is each local
    worker's (``"4GiB"``; ``"auto"``: Dask's share of the machine).  Progress events also include
    ``{"kind": "cluster", "dashboard", "workers"}``.  Ctrl-C raises ``KeyboardInterrupt`` after cancelling the
    pending tasks (complete files stay; :func:`survey_async`).

    Raises
    ------
    ParameterError
        A bad ``memory_limit``, ``workers`` or scheduler address.
    """
    n, threads = worker_layout(workers=workers)
    limit = _memory_limit(memory_limit)
    if scheduler is not None and not str(scheduler).strip():
        raise ParameterError("--scheduler", "is empty; give an address like tcp://HOST:8786")
    return asyncio.run(_main(inputs, out, config, scheduler, n, threads, limit, resume, progress))


def _memory_limit(text: str) -> str | int:
    if text == "auto":
        return "auto"
    from dask.utils import parse_bytes

    try:
        value = parse_bytes(text)
    except (ValueError, TypeError) as exc:
        raise ParameterError("--memory-limit", f"{text!r} is not a size like 4GiB or 2000MB ({exc})") from None
    if value < 256 * 2**20:
        raise ParameterError("--memory-limit", f"{text} is too small for a worker holding a model (≥ 256 MiB)")
    return value


NANNY_ENVIRON = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
"""Dask configuration of the LocalClusters galviewer starts.  distributed's nanny gives workers
``MALLOC_TRIM_THRESHOLD_=65536`` (to return freed memory to the system sooner); any explicit value turns off
glibc's dynamic mmap threshold, and the pipeline's many short-lived arrays then cost a page-fault storm: a source
took 1.6× as long in a worker as in-process (benchmarks/survey.py).  glibc's default is kept instead."""


def local_cluster(workers: int, memory_limit: Any = "auto", *, asynchronous: bool = False) -> Any:
    """A LocalCluster of ``workers`` single-threaded worker processes (:data:`NANNY_ENVIRON`), dashboard on a
    free port (started; asynchronous: use :func:`start_local_cluster`)."""
    import dask
    from distributed import LocalCluster

    with dask.config.set(NANNY_ENVIRON):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=memory_limit,
                            asynchronous=asynchronous, dashboard_address=":0")


async def start_local_cluster(workers: int, memory_limit: Any = "auto") -> Any:
    """:func:`local_cluster` on the running asyncio loop, started: its workers start while it is awaited, so the
    configuration must hold then too."""
    import dask

    with dask.config.set(NANNY_ENVIRON):
        return await local_cluster(workers, memory_limit, asynchronous=True)


async def _main(inputs: Sequence[tuple[str, str | None]], out: Any, config: SurveyConfig, scheduler: str | None,
                n: int, threads: int, limit: Any, resume: bool, progress: Progress | None) -> SurveyReport:
    from distributed import Client

    progress = progress or (lambda event: None)
    async with contextlib.AsyncExitStack() as stack:
        if scheduler is None:
            cluster = await start_local_cluster(n, limit)
            stack.push_async_callback(cluster.close)
            address: Any = cluster
        else:
            address = scheduler
        try:
            client = await stack.enter_async_context(Client(address, asynchronous=True, timeout="20s"))
        except (OSError, TimeoutError) as exc:
            raise ParameterError("--scheduler", f"cannot reach {scheduler}: {exc}") from None
        if scheduler is None:
            await client.wait_for_workers(n)
        pids = await client.run(os.getpid)
        progress({"kind": "cluster", "dashboard": client.dashboard_link, "workers": len(pids), "threads": threads})
        return await survey_async(client, inputs, out, config, threads=threads, resume=resume, progress=progress)

