import threading
import time

import pytest
from PySide6.QtCore import QTimer

from galviewer.errors import ParameterError, RestoreCancelled
from galviewer.qt.workers import JobRunner


@pytest.fixture
def runner(qtbot):
    r = JobRunner()
    yield r
    r.shutdown()


def _slow(value, seconds=0.5, started=None):
    def job(progress, cancelled):
        if started is not None:
            started.set()
        steps = 10
        for i in range(steps):
            if cancelled():
                raise RestoreCancelled("superseded")
            time.sleep(seconds / steps)
            progress(i + 1, steps)
        return value

    return job


def test_latest_request_wins_and_the_event_loop_keeps_running(qtbot, runner):
    results, ticks = [], []
    runner.result.connect(lambda ch, v: results.append((ch, v)))
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(20)
    started = threading.Event()
    runner.submit("restore", _slow("first", 2.0, started))
    assert started.wait(5)
    with qtbot.waitSignal(runner.result, timeout=10000):
        runner.submit("restore", _slow("second", 0.4))
    timer.stop()
    runner.wait()
    qtbot.wait(50)
    assert results == [("restore", "second")]
    assert len(ticks) >= 10  # the GUI thread processed timer events while the jobs ran
    assert not runner.is_busy("restore")


def test_progress_cancel_and_errors_are_reported(qtbot, runner):
    progress = []
    runner.progress.connect(lambda ch, d, t: progress.append((d, t)))
    with qtbot.waitSignal(runner.result, timeout=10000):
        runner.submit("measure", _slow(42, 0.1))
    assert progress[-1] == (10, 10)

    with qtbot.waitSignal(runner.error, timeout=10000) as blocker:
        runner.submit("measure", lambda p, c: (_ for _ in ()).throw(ParameterError("size", "must be positive")))
    ch, exc = blocker.args
    assert ch == "measure" and isinstance(exc, ParameterError) and "size" in str(exc)
    assert "ParameterError" in exc.__traceback_text__

    started = threading.Event()
    runner.submit("measure", _slow(1, 3.0, started))
    assert started.wait(5)
    with qtbot.waitSignal(runner.cancelled, timeout=1000):
        runner.cancel("measure")
    assert not runner.is_busy("measure")
    runner.wait()


def test_channels_are_independent(qtbot, runner):
    got = {}
    runner.result.connect(lambda ch, v: got.setdefault(ch, v))
    runner.submit("a", _slow("A", 0.2))
    runner.submit("b", _slow("B", 0.2))
    qtbot.waitUntil(lambda: len(got) == 2, timeout=10000)
    assert got == {"a": "A", "b": "B"}


def test_run_and_wait_returns_the_answer_and_raises_the_jobs_error(qtbot, runner):
    assert runner.run_and_wait("a", lambda: runner.submit("a", _slow("A", 0.05))) == "A"
    with pytest.raises(ParameterError, match="size"):
        runner.run_and_wait("b", lambda: runner.submit(
            "b", lambda p, c: (_ for _ in ()).throw(ParameterError("size", "must be positive"))))
    with pytest.raises(TimeoutError):
        runner.run_and_wait("c", lambda: None, timeout_ms=50)
