"""The survey's catalogue: every complete chunk's rows, in plan order, as Parquet and ECSV
(:mod:`galviewer.survey.engine` calls :func:`write_catalog` at the end of a run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["CATALOG", "write_catalog"]

CATALOG = "catalog"


def write_catalog(run: Any) -> list[Path]:
    """The catalogue of every complete chunk, in plan order, as Parquet and ECSV (atomic; replaces the previous
    run's, which holds a subset of these rows)."""
    from astropy.table import vstack

    from galviewer._atomic import atomic_write
    from galviewer.core.restore.batch import describe_columns
    from galviewer.survey.chunks import read_rows

    tables = []
    for path, _ in run.inputs:
        plan = run.manifest["inputs"][path].get("plan")
        if plan is None:
            continue
        for spec in run.chunk_specs(path, plan, 1):
            if Path(spec["out"]).is_file():
                tables.append(read_rows(spec["out"]))
    if not tables:
        run.log("no chunk complete: no catalogue written")
        return []
    table = vstack(tables, join_type="exact", metadata_conflicts="silent") if len(tables) > 1 else tables[0]
    table.meta.clear()
    _mark_duplicates(table)
    for c in ("ra", "dec"):
        table[c].unit = "deg"
    units = set(table["bunit"])
    describe_columns(table, units.pop() if len(units) == 1 else None)
    table.meta["comments"] = [f"galviewer survey of {len(run.inputs)} files; settings: "
                              f"{json.dumps(run.config.settings())}"]
    run.report.sources = len(table)
    run.report.restored = int((table["plane"] >= 0).sum())
    paths = []
    for suffix, fmt in ((".parquet", "parquet"), (".ecsv", "ascii.ecsv")):
        target = run.out / f"{CATALOG}{suffix}"
        paths.append(atomic_write(target, lambda tmp, fmt=fmt: table.write(tmp, format=fmt, overwrite=True),
                                  overwrite=True))
    return paths


def _mark_duplicates(table: Any) -> None:
    """Sources of one chip that are one once centred, across chunks too (each chunk marked its own), as the
    in-process batch marks them over the whole chip (:func:`~galviewer.core.restore.batch.duplicates`)."""
    import numpy as np

    from galviewer.core.restore.batch import duplicate_status, duplicates

    keys = np.char.add(np.asarray(table["file"], str), np.char.add("\n", np.asarray(table["ext"], str)))
    status = [str(v) for v in table["status"]]  # a new column: the FITS one has a fixed width
    for key in dict.fromkeys(keys):
        rows = np.flatnonzero(keys == key)
        found = duplicates(list(table["id"][rows]),
                           list(zip(table["x_stamp"][rows], table["y_stamp"][rows], strict=True)))
        for i, first in found.items():
            r = rows[i]
            if table["duplicate_of"][r] == 0:
                table["duplicate_of"][r] = first
                status[r] = duplicate_status(first, status[r])
    table["status"] = status
