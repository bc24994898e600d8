"""Survey throughput (issue 19): the in-process batch, a 1-worker and a 2-worker LocalCluster on the same sources,
measured side by side in one run on this machine, and a projection to a 200,000-source survey.

    python benchmarks/survey.py [--sources 2000] [--file tests/data/realdata/wfc3ir_cd_field.fits.gz]

The sources are those photutils detects on the real cut-out (``--file``), repeated until there are ``--sources``
of them (each repeat is the same work: throughput, not science).  The survey gets them as a catalogue, so that
the three runs restore exactly the same positions with the shipped default model and the default pipeline (8
flips, measurements, verdict).  Times: from the first task submitted to the catalogue written (the cluster's
start-up, a few seconds once per session, is reported apart).  The in-process baseline runs in a child process limited
to one core as a worker is (one torch thread; OMP/OpenBLAS/MKL threads 1): the per-core throughput a worker should
reach.  Every engine restores one source before the clock starts (per-process caches).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _report import write_table  # benchmarks/ is sys.path[0] when a script is run


def _sources(path: str, n: int) -> list[tuple[float, float]]:
    from galviewer.core.io.fits import open_image
    from galviewer.core.measure.detect import detect

    with open_image(path) as image:
        found = [(s.x, s.y) for s in detect(image)]
    return [found[k % len(found)] for k in range(n)]


def _catalog(positions: list[tuple[float, float]], folder: Path) -> Path:
    from astropy.table import Table

    path = folder / "positions.ecsv"
    Table({"id": [f"s{k}" for k in range(len(positions))], "x": [p[0] for p in positions],
           "y": [p[1] for p in positions]}).write(path, format="ascii.ecsv")
    return path


def _in_process(path: str, catalog: Path) -> float:
    """The baseline in a child process limited to one core as a Dask worker is (OMP/OpenBLAS/MKL threads 1, as
    distributed's nanny sets them; one torch thread)."""
    import json
    import subprocess

    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, __file__, "--baseline", path, str(catalog)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["seconds"])


def _baseline(path: str, catalog: str) -> float:
    import torch
    from astropy.table import Table

    from galviewer.core.io.fits import open_image
    from galviewer.core.measure.detect import Source
    from galviewer.core.restore.batch import restore_sources
    from galviewer.core.restore.pipeline import Pipeline

    torch.set_num_threads(1)
    pipe = Pipeline.default(device="cpu")
    nan = float("nan")
    table = Table.read(catalog)
    positions = list(zip(table["x"], table["y"], strict=True))
    sources = [Source(k + 1, x, y, nan, nan, nan, nan, nan, nan) for k, (x, y) in enumerate(positions)]
    with open_image(path) as image:
        pipe.run(image, *positions[0])  # warm-up: the model's first pass, the first fits
        t0 = time.perf_counter()
        restore_sources(pipe, image, sources)
        return time.perf_counter() - t0


def _warm(path: str, x: float, y: float) -> None:
    """One source through the whole pipeline on a worker, as the baseline's warm-up: the first forward pass and
    the first fits build per-process caches (oneDNN primitives, GalSim's Sérsic tables)."""
    from galviewer.core.io.fits import open_image
    from galviewer.core.restore.pipeline import Pipeline

    with open_image(path) as image:
        Pipeline.shared(device="cpu").run(image, x, y)


def _cluster(path: str, catalog: Path, workers: int, out: Path, first: tuple[float, float]
             ) -> tuple[float, float, int]:
    from distributed import Client

    from galviewer.survey import SurveyConfig, expand_inputs, run_survey
    from galviewer.survey.engine import local_cluster
    from galviewer.survey.tasks import load_model

    t0 = time.perf_counter()
    with local_cluster(workers) as cluster, Client(cluster) as client:
        client.wait_for_workers(workers)
        # the model loaded on every worker before the clock starts (a survey loads it once per worker)
        client.run(load_model)
        client.run(_warm, path, *first)
        startup = time.perf_counter() - t0
        report = run_survey(expand_inputs([path], {path: str(catalog)}), out, SurveyConfig(chunk_size=32),
                            scheduler=cluster.scheduler_address)
    return report.seconds, startup, report.sources


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sources", type=int, default=2000)
    ap.add_argument("--file", default="tests/data/realdata/wfc3ir_cd_field.fits.gz")
    ap.add_argument("--out", default="benchmarks/results/survey.md")
    ap.add_argument("--baseline", nargs=2, metavar=("FILE", "CATALOG"), help=argparse.SUPPRESS)  # the child
    args = ap.parse_args()
    if args.baseline:
        import json

        print(json.dumps({"seconds": _baseline(*args.baseline)}))
        return 0
    path = str(Path(args.file).resolve())
    work = Path(tempfile.mkdtemp(prefix="gv_survey_bench_"))
    try:
        positions = _sources(path, args.sources)
        catalog = _catalog(positions, work)
        n = len(positions)
        rows = {}
        t = _in_process(path, catalog)
        rows["in-process batch, 1 torch thread (1 core)"] = (t, 1, float("nan"))
        for workers in (1, 2):
            t, startup, got = _cluster(path, catalog, workers, work / f"w{workers}", positions[0])
            assert got == n, f"the survey catalogued {got} of {n} sources"
            rows[f"LocalCluster, {workers} worker{'s' if workers > 1 else ''} × 1 thread"] = (t, workers, startup)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = rows["in-process batch, 1 torch thread (1 core)"][0]
    one = rows["LocalCluster, 1 worker × 1 thread"][0]
    two = rows["LocalCluster, 2 workers × 1 thread"][0]
    lines = [f"# Survey throughput ({n} sources of {Path(path).name}, default model and pipeline, "
             f"{os.cpu_count()} cores)", "",
             f"`python benchmarks/survey.py --sources {args.sources}` — one run, same machine, same sources.", "",
             "| engine | cores | time (s) | sources/s | per core vs in-process | start-up (s) |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, (t, cores, startup) in rows.items():
        per_core = (n / t / cores) / (n / base)
        lines.append(f"| {name} | {cores} | {t:.1f} | {n / t:.3f} | {per_core:.2f}× | "
                     f"{'–' if startup != startup else f'{startup:.1f}'} |")
    rate = n / two / 2  # sources/s per worker, 2 workers on 2 cores
    lines += ["", f"2 workers vs 1 worker: **{one / two:.2f}×** the sources/s; per core, the 2-worker cluster reaches "
              f"**{(n / two / 2) / (n / base):.2f}×** the in-process batch's throughput.", "",
              f"Projection: a 200,000-source survey at {rate:.3f} sources/s per worker (this machine's cores, the "
              "default model with 8 flips and every measurement) takes",
              "", "| workers | hours |", "|---:|---:|"]
    for w in (2, 16, 64, 256):
        lines.append(f"| {w} | {200_000 / (rate * w) / 3600:.1f} |")
    lines += ["", "Assumes: workers as fast as these cores, each with one core; the scaling measured here from 1 "
              "to 2 workers holds (tasks are independent chunks; the scheduler's overhead per 32-source chunk is "
              "milliseconds); inputs read from a shared file system as fast as from local disk; sources like "
              "these (64-px stamps, 8-px margin).  `--no-uncertainty` (one pass instead of 8) cuts the network's "
              "share; the measurements (Sérsic fits of LQ and RS) then dominate."]
    write_table(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
