"""galviewer survey on a 2-worker LocalCluster: the same stamps and rows as the in-process batch, a killed worker
survived, --resume, a bad file isolated, Parquet = ECSV, an interruption that leaves only complete files."""

import asyncio
import os
import signal
import threading

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.table import Table

from galviewer.cli import main
from galviewer.core.io.fits import open_image
from galviewer.core.measure.detect import Source
from galviewer.core.restore.batch import restore_sources
from galviewer.core.restore.pipeline import Pipeline
from galviewer.errors import ImageLoadError, OutputExistsError, ParameterError
from galviewer.survey import SurveyConfig, expand_inputs, read_rows, read_stamp, run_survey, survey_async
from galviewer.survey.chunks import ascii_text
from tests.helpers import write_drz, write_flt, write_two_chip_flt

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes, as `galviewer survey` starts on this 2-core machine."""
    from galviewer.survey.engine import local_cluster

    with local_cluster(2, "3GiB") as c:
        yield c


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("survey_in")
    return [write_flt(d / "j8pu01aaq_flt.fits", seed=1), write_drz(d / "field_drz.fits", seed=2)]


def _config(tiny_ckpt, **kw):
    return SurveyConfig(model=str(tiny_ckpt), chunk_size=kw.pop("chunk_size", 2), pipeline={"uncertainty": True},
                        **kw)


def _rows(out):
    return Table.read(out / "catalog.ecsv")


def test_survey_equals_the_in_process_batch_and_parquet_equals_ecsv(cluster, files, tiny_ckpt, tmp_path):
    out = tmp_path / "s"
    config = _config(tiny_ckpt)
    events = []
    report = run_survey(expand_inputs([str(f) for f in files]), out, config, scheduler=cluster.scheduler_address,
                        progress=events.append)
    cat = _rows(out)
    # FLT: 3 galaxies on each of 2 chips; DRZ: 3 galaxies (tests.helpers.SOURCES)
    assert report.sources == len(cat) == 9 and report.restored == 9 and not report.failed_files
    assert sorted(set(cat["ext"])) == ["SCI,1", "SCI,2"]
    assert {e["kind"] for e in events} >= {"cluster", "planned", "chunk", "catalog"}
    # every source exactly once
    assert len({(f, e, i) for f, e, i in zip(cat["file"], cat["ext"], cat["id"], strict=True)}) == len(cat)
    # the in-process batch on the same sources, one torch thread as each worker has
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pipe = Pipeline.default(str(tiny_ckpt), device="cpu", uncertainty=True)
        for f in files:
            for ext in sorted(set(cat["ext"][cat["file"] == f.name])):
                sel = cat[(cat["file"] == f.name) & (cat["ext"] == ext)]
                srcs = [Source(int(r["id"]), float(r["x"]), float(r["y"]), float(r["det_flux"]), np.nan,
                               np.nan, np.nan, np.nan, np.nan) for r in sel]
                with open_image(f, ext) as image:
                    batch = restore_sources(pipe, image, srcs)
                for r, b in zip(sel, batch, strict=True):
                    stamp = read_stamp(out / r["chunk"], int(r["plane"]))
                    assert np.array_equal(stamp["RS"], b.restoration.data.astype(np.float32))
                    assert np.array_equal(stamp["SIGMA"], b.restoration.sigma.astype(np.float32))
                    assert np.array_equal(stamp["LQ"], b.restoration.lq.astype(np.float32))
                    row = b.row()
                    for key in ("x_stamp", "y_stamp", "n_LQ", "r50_RS", "kron_flux_RS", "kron_mag_RS",
                                "flux_conservation", "residual_chi2", "sersic_flag_RS"):
                        assert r[key] == row[key] or (np.isnan(r[key]) and np.isnan(row[key])), key
                    assert r["status"] == ascii_text(row["status"])
                    # the stamp's own WCS from the chunk: the in-process stamp's
                    w, wb = stamp["wcs"], b.restoration.stamp.wcs
                    assert np.allclose(w.all_pix2world([[3.0, 40.0]], 0), wb.all_pix2world([[3.0, 40.0]], 0),
                                       rtol=0, atol=1e-9)
    finally:
        torch.set_num_threads(threads)
    # Parquet and ECSV: the same rows and values
    par = pq.read_table(out / "catalog.parquet").to_pydict()
    assert list(par) == cat.colnames
    for name in cat.colnames:
        a, b = np.asarray(par[name]), np.asarray(cat[name])
        if a.dtype.kind == "f":
            assert np.allclose(a, b, equal_nan=True, rtol=0, atol=0), name
        else:  # ECSV reads an empty string as masked
            assert list(a) == list(np.ma.filled(cat[name], "") if a.dtype.kind == "U" else b), name
    # two units in one survey (FLT electrons, DRZ electrons/s): each row says its own
    assert set(cat["bunit"]) == {"ELECTRONS", "ELECTRONS/S"} and cat["kron_flux_RS"].unit is None
    assert "Kron" in cat["kron_flux_RS"].description and "bunit" in cat["kron_flux_RS"].description
    assert cat["ra"].unit == "deg" and np.isfinite(cat["ra"]).all()
    # the chunk files: cubes in chunks, a STAMPS table, the chip's WCS and the provenance
    with fits.open(out / cat["chunk"][0]) as h:
        assert [x.name for x in h] == ["PRIMARY", "RS", "LQ", "SIGMA", "RESID", "MASK", "STAMPS"]
        assert h["RS"].data.shape == (2, 64, 64) and h["MASK"].data.dtype == np.uint8
        assert h[0].header["MODELSHA"] == cat["model_sha256"][0] and h[0].header["STEP1"].startswith("cutout")
        assert h["RS"].header["BUNIT"] == "ELECTRONS"


def test_a_worker_killed_mid_run_is_survived_without_loss_or_duplicates(cluster, files, tiny_ckpt, tmp_path):
    client = distributed.Client(cluster.scheduler_address, timeout="20s")
    try:
        pids = sorted(client.run(os.getpid).values())
        killed = []

        def kill_once(event):
            # after the first chunk both workers hold running chunks (5 chunks of 1-2 sources are queued)
            if event["kind"] == "chunk" and not killed:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

        out = tmp_path / "k"
        report = run_survey(expand_inputs([str(files[0])]), out, _config(tiny_ckpt, chunk_size=1),
                            scheduler=cluster.scheduler_address, progress=kill_once)
        client.wait_for_workers(2, timeout=60)
        assert killed and killed[0] not in client.run(os.getpid).values()  # the nanny started a new worker
    finally:
        client.close()
    cat = _rows(out)
    assert report.sources == len(cat) == 6 and not report.failed_chunks and report.restored == 6
    assert len(set(zip(cat["ext"], cat["id"], strict=True))) == 6
    assert not list(out.glob(".*.part"))  # a killed writer's temporary file is swept
    assert len(list(out.glob("*_c*.fits"))) == 6


def test_resume_recomputes_nothing_complete(cluster, files, tiny_ckpt, tmp_path):
    out = tmp_path / "r"
    inputs = expand_inputs([str(f) for f in files])
    config = _config(tiny_ckpt)
    first = run_survey(inputs, out, config, scheduler=cluster.scheduler_address)
    chunks = sorted(out.glob("*_c*.fits"))
    assert first.chunks_run == len(chunks) == 6  # 3 sources on each FLT chip and on the DRZ, 2 per chunk
    before = {p.name: p.stat().st_mtime_ns for p in chunks}
    rows_before = _rows(out)
    # nothing to do: nothing recomputed
    again = run_survey(inputs, out, config, scheduler=cluster.scheduler_address, resume=True)
    assert again.chunks_run == 0 and again.chunks_skipped == 6
    # a lost chunk: only it is recomputed
    chunks[1].unlink()
    third = run_survey(inputs, out, config, scheduler=cluster.scheduler_address, resume=True)
    assert third.chunks_run == 1 and third.chunks_skipped == 5
    after = {p.name: p.stat().st_mtime_ns for p in sorted(out.glob("*_c*.fits"))}
    assert {k: v for k, v in after.items() if k != chunks[1].name} == \
        {k: v for k, v in before.items() if k != chunks[1].name}
    rows_after = _rows(out)
    assert list(rows_after["kron_flux_RS"]) == list(rows_before["kron_flux_RS"])
    # a new run into the folder is refused; a resume with other settings names the setting
    with pytest.raises(OutputExistsError, match="--resume"):
        run_survey(inputs, out, config, scheduler=cluster.scheduler_address)
    with pytest.raises(ParameterError, match="chunk_size"):
        run_survey(inputs, out, _config(tiny_ckpt, chunk_size=3), scheduler=cluster.scheduler_address, resume=True)


def test_a_bad_file_fails_alone_and_is_named(cluster, files, tiny_ckpt, tmp_path):
    bad = tmp_path / "broken_flt.fits"
    bad.write_bytes(fits.PrimaryHDU(np.zeros((50, 50), np.float32)).header.tostring().encode()[:2000])
    out = tmp_path / "b"
    report = run_survey(expand_inputs([str(bad), str(files[1])]), out, _config(tiny_ckpt),
                        scheduler=cluster.scheduler_address)
    assert list(report.failed_files) == [str(bad.resolve())]
    assert "broken_flt.fits" in report.failed_files[str(bad.resolve())]
    assert report.sources == 3 and set(_rows(out)["file"]) == {"field_drz.fits"}
    assert _rows(out)["kron_flux_LQ"].unit == "electron / s"  # one unit: on the column
    log = (out / "survey.log").read_text()
    assert "FAILED plan" in log and "broken_flt.fits" in log


def test_an_interrupted_survey_leaves_complete_files_and_resumes(cluster, files, tiny_ckpt, tmp_path):
    out = tmp_path / "i"
    inputs = expand_inputs([str(files[0])])
    config = _config(tiny_ckpt, chunk_size=1)

    async def interrupted():
        client = await distributed.Client(cluster.scheduler_address, asynchronous=True)
        try:
            first = asyncio.Event()
            task = asyncio.ensure_future(survey_async(
                client, inputs, out, config, progress=lambda e: e["kind"] == "chunk" and first.set()))
            await first.wait()
            task.cancel()  # what Ctrl-C does to the command's main task
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            await client.close()

    asyncio.run(interrupted())
    written = sorted(out.glob("*_c*.fits"))
    assert 1 <= len(written) < 6 and "interrupted" in (out / "survey.log").read_text()
    for p in written:  # each is complete: a readable STAMPS table with its rows
        assert len(read_rows(p)) == fits.getheader(p, "STAMPS")["NSOURCES"] == 1
    report = run_survey(inputs, out, config, scheduler=cluster.scheduler_address, resume=True)
    assert report.chunks_skipped >= len(written) - 1 and report.sources == 6


def test_survey_command_line(cluster, files, tiny_ckpt, tmp_path, capsys):
    out = tmp_path / "cli"
    rc = main(["survey", str(files[1]), "-o", str(out), "--model", str(tiny_ckpt), "--no-uncertainty",
               "--scheduler", cluster.scheduler_address, "--no-progress"])
    text = capsys.readouterr()
    assert rc == 0 and "3 sources (3 restored)" in text.out and "dashboard" in text.err
    # errors name the input or the parameter, exit status 2
    assert main(["survey", str(tmp_path / "nope*.fits"), "-o", str(tmp_path / "x")]) == 2
    assert "matches no file" in capsys.readouterr().err
    assert main(["survey", str(files[1]), "-o", str(out), "--model", str(tiny_ckpt), "--no-uncertainty"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["survey", str(files[1]), "-o", str(tmp_path / "y"), "--catalog", "x.ecsv"]) == 2
    assert "FILE=CATALOG" in capsys.readouterr().err
    assert main(["survey", str(files[1]), "-o", str(tmp_path / "y"), "--memory-limit", "lots"]) == 2
    assert "--memory-limit" in capsys.readouterr().err


def test_catalogue_inputs_place_sky_rows_on_their_chip(cluster, tiny_ckpt, tmp_path):
    flt = write_two_chip_flt(tmp_path / "j8pu02bbq_flt.fits")  # SCI,2 on the sky above SCI,1, as ACS/WFC's
    with open_image(flt, "SCI,2") as image:
        ra, dec = image.pixel_to_world(120.3, 80.7)
    cat = tmp_path / "targets.csv"
    cat.write_text(f"id,ra,dec\nT1,{ra:.10f},{dec:.10f}\nT2,0.0,0.0\n")
    inputs = expand_inputs([str(flt)], {str(flt): str(cat)})
    report = run_survey(inputs, tmp_path / "c", _config(tiny_ckpt), scheduler=cluster.scheduler_address)
    rows = _rows(tmp_path / "c")
    assert report.sources == 1 and list(rows["label"]) == ["T1"] and list(rows["ext"]) == ["SCI,2"]
    assert abs(rows["x"][0] - 120.3) < 1 and abs(rows["y"][0] - 80.7) < 1
    with pytest.raises(ImageLoadError, match="matches no file"):
        expand_inputs([str(tmp_path / "none*.fits")])
    with pytest.raises(ParameterError, match="not one of the inputs"):
        expand_inputs([str(flt)], {"other.fits": str(cat)})


def test_survey_runs_in_a_thread_without_touching_the_callers_loop(cluster, files, tiny_ckpt, tmp_path):
    """The viewer runs the survey through its own event loop; a survey in a thread must work as well."""
    result = {}

    def target():
        result["r"] = run_survey(expand_inputs([str(files[1])]), tmp_path / "t", _config(tiny_ckpt),
                                 scheduler=cluster.scheduler_address)

    t = threading.Thread(target=target)
    t.start()
    t.join(120)
    assert result["r"].sources == 3


def test_two_positions_on_one_galaxy_are_marked_once_centred_across_chunks(cluster, files, tiny_ckpt, tmp_path):
    """Two catalogue rows on the same galaxy refine to one centroid: the second says whose duplicate it is, in the
    survey's catalogue (the rows are in different chunks) as in the in-process batch."""
    cat = tmp_path / "pairs.ecsv"
    Table({"id": [1, 2, 3], "x": [120.3, 121.4, 40.0], "y": [80.7, 81.6, 150.0]}).write(cat)
    out = tmp_path / "d"
    run_survey(expand_inputs([str(files[1])], {str(files[1]): str(cat)}), out, _config(tiny_ckpt, chunk_size=1),
               scheduler=cluster.scheduler_address)
    rows = _rows(out)
    assert list(rows["duplicate_of"]) == [0, 1, 0]
    assert rows["status"][1].startswith("the same source as 1 once centred; ")
    assert abs(rows["x_stamp"][0] - rows["x_stamp"][1]) < 0.5
    pipe = Pipeline.default(str(tiny_ckpt), device="cpu", uncertainty=True)
    nan = np.nan
    with open_image(files[1]) as image:
        batch = restore_sources(pipe, image, [Source(i, x, y, nan, nan, nan, nan, nan, nan)
                                              for i, x, y in zip(rows["id"], [120.3, 121.4, 40.0],
                                                                 [80.7, 81.6, 150.0], strict=True)])
    assert [b.row()["duplicate_of"] for b in batch] == [0, 1, 0]
    assert [ascii_text(b.row()["status"]) for b in batch] == list(rows["status"])
