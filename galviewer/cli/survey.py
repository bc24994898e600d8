"""``galviewer survey``: every source of many files, restored and measured on Dask distributed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from galviewer.cli._common import _add_clean_arg, _add_context_arg, _add_dq_arg, _add_model_args, _check_size
from galviewer.errors import ParameterError

__all__ = ["add_survey_parser", "cmd_survey"]


def add_survey_parser(sub: Any) -> None:
    """The ``survey`` sub-command's options."""
    s = sub.add_parser(
        "survey", help="restore and measure every source of many files on a Dask cluster (local or existing)",
        description="Every source of every input (files or globs; FLT/FLC chip by chip, DRZ/DRC, plain) goes "
        "through the same pipeline as a click: detected (photutils, no cap) or listed by a catalogue, restored, "
        "measured.  Writes into -o DIR: per input and chip, FITS chunk files holding the stamps as cubes (RS, LQ, "
        "SIGMA, RESID, MASK) and a STAMPS table (origin, WCS, verdict); the catalogue of every source as "
        "catalog.parquet and catalog.ecsv; survey.json (the manifest) and survey.log (what failed and why).  "
        "A new LocalCluster by default; --scheduler uses an existing cluster (its workers need galviewer).")
    s.add_argument("files", nargs="+", metavar="FILE", help="FITS images or globs (quote globs: 'field/*_drz.fits')")
    s.add_argument("-o", "--output", required=True, metavar="DIR", help="survey folder (new or empty; or the one "
                   "being resumed with --resume)")
    s.add_argument("--resume", action="store_true", help="complete the survey in DIR: skip every complete chunk "
                   "(same settings required)")
    s.add_argument("--catalog", action="append", default=[], metavar="FILE=CATALOG",
                   help="sources of one input from a catalogue (ECSV/FITS/CSV with x,y or ra,dec, or a DS9 .reg); "
                   "repeat for other inputs; inputs without one are detected")
    s.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="an existing Dask scheduler (default: a LocalCluster on this machine)")
    s.add_argument("--workers", type=int, default=None, help="LocalCluster workers (default: one per core, each "
                   "with one torch thread)")
    s.add_argument("--memory-limit", default="auto", metavar="SIZE",
                   help="memory per LocalCluster worker, e.g. 4GiB (default auto: Dask's share of the machine); a "
                   "worker past it is restarted and its chunk run again")
    s.add_argument("--chunk-size", type=int, default=32, metavar="N", help="sources per task and per chunk file "
                   "(default 32)")
    s.add_argument("--size", type=int, default=64, help="stamp side in pixels (default 64)")
    s.add_argument("--origin", type=int, choices=(0, 1), default=0, help="origin of catalogue x,y columns")
    s.add_argument("--no-refine", action="store_true", help="do not move the centre to the source centroid")
    s.add_argument("--nsigma", type=float, default=3.0, help="detection threshold in σ (default 3)")
    s.add_argument("--npixels", type=int, default=10, help="detection: connected pixels (default 10)")
    s.add_argument("--no-deblend", dest="deblend", action="store_false", help="detection: do not split blends")
    s.add_argument("--no-hot", dest="hot", action="store_false", help="detection: no second, 16-px-mesh pass")
    s.add_argument("--no-progress", action="store_true", help="no progress bars (a line per finished file)")
    _add_context_arg(s, "")
    _add_clean_arg(s)
    _add_dq_arg(s)
    _add_model_args(s)


def _catalogs(specs: list[str]) -> dict[str, str]:
    out = {}
    for spec in specs:
        image, sep, cat = spec.partition("=")
        if not sep or not image or not cat:
            raise ParameterError("--catalog", f"{spec!r}: write FILE=CATALOG")
        out[image] = cat
    return out


class _Bars:
    """Progress a person can read: one bar for the survey (sources/s and the time left), one per file being
    restored; a plain line per finished file without a terminal."""

    def __init__(self, enabled: bool) -> None:
        from tqdm import tqdm

        self.tqdm = tqdm
        self.enabled = enabled
        self.total = tqdm(total=0, unit="src", desc="survey", dynamic_ncols=True, disable=not enabled,
                          smoothing=0.1)
        self.files: dict[str, Any] = {}
        self.todo: dict[str, int] = {}

    def write(self, text: str) -> None:
        self.tqdm.write(text, file=sys.stderr)

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["kind"]
        if kind == "cluster":
            self.write(f"galviewer: {event['workers']} Dask workers ({event['threads']} torch thread(s) each); "
                       f"dashboard {event['dashboard']}")
        elif kind == "planned":
            self.todo[event["path"]] = event["todo_sources"]
            self.total.total += event["todo_sources"]
            self.total.refresh()
            done = event["sources"] - event["todo_sources"]
            self.write(f"galviewer: {event['file']}: {event['sources']} sources in {event['chunks']} chunks"
                       + (f" ({done} done before)" if done else ""))
            if not event["todo_sources"]:
                self.write(f"galviewer: {event['file']}: complete")
        elif kind == "chunk":  # keyed by the input's path: two inputs may share a name
            key, name = event["path"], event["file"]
            self.total.update(event["sources"])
            bar = self.files.get(key)
            if bar is None:
                bar = self.files[key] = self.tqdm(total=self.todo.get(key, 0), unit="src", desc=name[:30],
                                                  leave=False, disable=not self.enabled, dynamic_ncols=True)
            bar.update(event["sources"])
            self.todo[key] = self.todo.get(key, 0) - event["sources"]
            if self.todo[key] <= 0:
                bar.close()
                self.write(f"galviewer: {name}: complete")
        elif kind == "failed":
            self.total.total -= event.get("sources", 0)
            self.write(f"galviewer: FAILED {event['task']} of {event['file']}: {event['error']}")
        elif kind == "catalog":
            self.total.close()

    def close(self) -> None:
        for bar in self.files.values():
            bar.close()
        self.total.close()


def cmd_survey(args: argparse.Namespace) -> int:
    from galviewer.cli._common import _refuse_input_as_output, pipeline_settings
    from galviewer.survey.engine import SurveyConfig, expand_inputs, run_survey

    _check_size(args.size)
    inputs = expand_inputs(args.files, _catalogs(args.catalog))
    out = Path(args.output)
    _refuse_input_as_output(out, *(p for p, _ in inputs), *(c for _, c in inputs if c), args.model)
    config = SurveyConfig(model=args.model, pipeline=pipeline_settings(args), chunk_size=args.chunk_size,
                          dq_ignore=args.dq_ignore, origin=args.origin, nsigma=args.nsigma, npixels=args.npixels,
                          deblend=args.deblend, hot=args.hot)
    bars = _Bars(enabled=not args.no_progress and sys.stderr.isatty())
    try:
        report = run_survey(inputs, out, config, scheduler=args.scheduler, workers=args.workers,
                            memory_limit=args.memory_limit, resume=args.resume, progress=bars)
    except KeyboardInterrupt:
        bars.close()
        print(f"galviewer: interrupted; complete chunk files stay in {out}: run the same command with --resume "
              "to finish", file=sys.stderr)
        return 130
    bars.close()
    r = report
    rate = f", {r.sources_per_second:.2f} sources/s" if r.sources_run else ""
    print(f"{out}: {r.sources} sources ({r.restored} restored) from {len(inputs) - len(r.failed_files)} of "
          f"{len(inputs)} files; {r.chunks_run} chunks run in {r.seconds:.1f} s{rate}, {r.chunks_skipped} complete "
          f"before; catalogue {', '.join(p.name for p in r.catalog) or 'none'}")
    for path, reason in r.failed_files.items():
        print(f"galviewer: file failed: {path}: {reason}", file=sys.stderr)
    for path, reason in r.failed_chunks.items():
        print(f"galviewer: chunk failed: {path}: {reason} (rerun with --resume)", file=sys.stderr)
    return 0 if not (r.failed_files or r.failed_chunks) else 1
