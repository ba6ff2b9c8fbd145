"""Progress on long work: a tqdm bar on a terminal, one plain line per event elsewhere, or nothing.

What is shown, on stderr:

* a single run (:class:`RunBar`): iteration k of ``max_iter``, f, the rate and the time left, for a
  run that lasts longer than :data:`SHOW_AFTER_S`; the bar is cleared before the run's end line.
  Nothing when stderr is not a terminal: a run has no events but its end line.
* a sweep (:class:`SweepProgress`): jobs done out of the sweep's total, by status, and the time
  left; under the batched launcher also the chunks and the iterations. When stderr is not a
  terminal, one line per event (a job ended, a chunk ended), no carriage returns. Every event is
  also a line of ``SWEEP_DIR/sweep.log`` (:data:`runner.store.SWEEP_LOG`), whatever is shown.

``hydra.callbacks.progress.show`` picks it: ``auto`` (the default) a bar on a terminal and lines
elsewhere, ``true`` a bar even when stderr is not a terminal, ``false`` nothing. ``TQDM_DISABLE``
set to any value (tqdm's own switch) is ``false`` too. This module never imports Hydra: the
callback in :mod:`runner.app` gives it the sweep's folder, its size and the jobs' folders.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from runner.store import SUMMARY_FILE, SWEEP_LOG, read_summary
from runner.trace import STATUSES


class _Bar(tqdm):
    """tqdm without its monitor thread (it only tunes the redraw rate of bars that stall): a thread left
    running would keep the figures from being drawn on two cores (:mod:`runner.figures._shared`)."""

    monitor_interval = 0


SHOW_AFTER_S = 2.0  # a single run shows no bar before it has run this long
WATCH_EVERY_S = 1.0  # how often a sweep whose jobs run in other processes looks for their summaries
SHOW_VALUES = ("auto", "true", "false")


def check_show(value) -> str:
    """``hydra.callbacks.progress.show`` as one of :data:`SHOW_VALUES` (YAML may give a bool)."""
    text = {True: "true", False: "false"}.get(value, value) if isinstance(value, bool) else value
    if text not in SHOW_VALUES:
        raise ValueError(f"hydra.callbacks.progress.show={value}: expected auto, true or false")
    return text


def display(show: str, stream=None) -> str | None:
    """How progress shows on ``stream`` (stderr): ``"bar"``, ``"lines"`` or None for nothing.

    ``TQDM_DISABLE`` set to anything but the empty string turns it off, as it turns off every
    tqdm bar (tqdm reads it as a bool, so ``TQDM_DISABLE=0`` disables too).
    """
    stream = sys.stderr if stream is None else stream
    show = check_show(show)
    if show == "false" or os.environ.get("TQDM_DISABLE"):
        return None
    if show == "true":
        return "bar"
    isatty = getattr(stream, "isatty", None)
    return "bar" if isatty is not None and isatty() else "lines"


class RunBar:
    """A single run's bar, called as the drivers' ``progress(k, f)`` (about every half second)::

        iteration  37%|███▋      | 73908/200000 [00:05<00:08, 14781.02it/s, f = 987.88]

    tqdm's own ``delay`` keeps it hidden for runs shorter than :data:`SHOW_AFTER_S`.
    """

    def __init__(self, max_iter: int | None, stream=None):
        self.bar = _Bar(
            total=max_iter,
            desc="iteration",
            unit="it",
            file=sys.stderr if stream is None else stream,
            delay=SHOW_AFTER_S,
            leave=False,  # the run's end line takes its place
            **_width(stream),
        )

    def __call__(self, k: int, f: float) -> None:
        self.bar.set_postfix_str(f"f = {f:.6g}", refresh=False)
        self.bar.update(k - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def counts_text(counts: Counter) -> str:
    """``3 converged, 1 max_iter``: the counts in the order of :data:`runner.trace.STATUSES`, others last."""
    order = [s for s in STATUSES if counts[s]] + sorted(s for s in counts if s not in STATUSES and counts[s])
    return ", ".join(f"{counts[s]} {s}" for s in order)


class SweepProgress:
    """A sweep's progress: jobs (and under the batched launcher chunks and iterations) done out of the total.

    Jobs are counted as they end, by their folder's ``summary.json``: :meth:`job_ended`, called
    in this process (Hydra's ``on_job_end`` under the basic launcher, the batched launcher's
    jobs run one by one); for a launcher whose jobs run in other processes (joblib, submitit), a
    thread looks for new summaries in the sweep folder every :data:`WATCH_EVERY_S`, until a job
    ends in this process. :meth:`chunk_ended` counts the batched launcher's chunks.
    """

    def __init__(self, sweep_dir: str | Path, total: int | None, show: str = "auto", stream=None):
        self.sweep_dir = Path(sweep_dir).resolve()  # jobs name their folders in full
        self.total = total
        self.stream = sys.stderr if stream is None else stream
        self.mode = display(show, self.stream)
        self.counts: Counter = Counter()
        self.done = 0
        self.iterations = 0
        self.start = time.monotonic()
        self._seen: set[Path] = set()
        self._lock = threading.Lock()
        self._in_process = threading.Event()
        self._stop_watching = threading.Event()
        self.log = _sweep_log(self.sweep_dir)
        self._pending = [f"sweep: {total if total is not None else 'an unknown number of'} jobs"]
        self.bar = None
        self._streams = None
        # Summaries already there when the sweep starts belong to an earlier launch.
        self._before = {p: _mtime(p) for p in self.sweep_dir.rglob(SUMMARY_FILE)} if self.sweep_dir.is_dir() else {}
        self._watcher = threading.Thread(target=self._watch, name="sweep-progress", daemon=True)
        self._watcher.start()

    # ------------------------------------------------------------------ events

    def job_ended(self, job_dir: str | Path, status: str | None = None) -> None:
        """The job in ``job_dir`` ended (in this process): its status is its summary's, else ``status``."""
        self._in_process.set()
        self._count(Path(job_dir).resolve() / SUMMARY_FILE, status)

    def chunk_ended(self, statuses: list[str], iterations: int, chunk: int, chunks: int, budget: int) -> None:
        """A batched chunk ended: its configs' ``statuses``, the ``iterations`` they ran, its number ``chunk``
        of ``chunks``, and ``budget``, the most iterations the sweep's batched configs may run (their max_iter).
        Chunk 0 stands for the configs an earlier launch ran (resume)."""
        self._in_process.set()
        with self._lock:
            self.counts.update(statuses)
            self.done += len(statuses)
            self.iterations += iterations
            detail = "done already" if chunk == 0 else f"chunk {chunk}/{chunks}, {self.iterations:,}/{budget:,} it"
            self._event(len(statuses), f"{detail}: {len(statuses)} configs", detail)

    def counted_here(self) -> None:
        """Every job will be counted in this process (the batched launcher's chunks): the watcher stops now,
        so that the process runs one thread again (an engine that forks it needs that)."""
        self._in_process.set()
        self._stop_watching.set()
        self._watcher.join()

    def _count(self, summary: Path, status: str | None) -> None:
        with self._lock:
            if summary in self._seen:
                return
            self._seen.add(summary)
            try:
                status = read_summary(summary).get("status") or status
            except (OSError, ValueError):  # no summary: the job failed before writing one
                status = status or "failed"
            self.counts[status] += 1
            self.done += 1
            job = _relative(summary.parent, self.sweep_dir)
            self._event(1, f"{job}: {status}")

    def _event(self, n: int, what: str, postfix: str = "") -> None:
        """One event of ``n`` jobs: the bar moves, or a line is written; and a line of the sweep's log."""
        of = f"/{self.total}" if self.total is not None else ""
        line = f"sweep: {self.done}{of} jobs ({counts_text(self.counts)}); {self._times()}; {what}"
        self._log(line)
        text = counts_text(self.counts)
        text = f"{text}; {postfix}" if postfix else text
        if self.mode == "bar" and self.bar is None:
            self._start_bar(text)
        elif self.mode == "bar":
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(n)
        if self.mode == "lines":
            self.stream.write(line + "\n")
            self.stream.flush()

    def _start_bar(self, postfix: str) -> None:
        """The bar, at the first event: when the jobs run in this process, whose output can be held above
        it; a launcher's workers (joblib) write to the terminal past it, so there a line per event it is."""
        if not self._in_process.is_set():
            self.mode = "lines"
            return
        self.bar = _Bar(
            total=self.total,
            desc="sweep",
            unit="job",
            file=self.stream,
            smoothing=0,  # the rate over the whole sweep: jobs end in bursts (chunks, parallel jobs)
            delay=1e-9,  # drawn by the update below, with the sweep's elapsed time
            **_width(self.stream),
        )
        self.bar.start_t -= time.monotonic() - self.start  # the sweep's elapsed time, not the bar's
        self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.update(self.done)
        # Lines printed while the bar shows (Hydra's log, each job's end line) go above it.
        self._streams = (sys.stdout, sys.stderr)
        sys.stdout, sys.stderr = AboveBar(sys.stdout, self.stream), AboveBar(sys.stderr, self.stream)

    def _times(self) -> str:
        elapsed = time.monotonic() - self.start
        text = f"{tqdm.format_interval(elapsed)} elapsed"
        if self.total and 0 < self.done < self.total:
            text += f", about {tqdm.format_interval(elapsed / self.done * (self.total - self.done))} left"
        return text

    def _log(self, line: str) -> None:
        """A line of sweep.log, once the sweep folder exists: a sweep refused before any job leaves none."""
        if not self.sweep_dir.is_dir():
            self._pending.append(line)
            return
        for pending in self._pending:
            self.log.info(pending)
        self._pending.clear()
        self.log.info(line)

    # ------------------------------------------------------------------ jobs in other processes

    def _watch(self) -> None:
        while not self._stop_watching.wait(WATCH_EVERY_S) and not self._in_process.is_set():
            self._scan()

    def _scan(self) -> None:
        if not self.sweep_dir.is_dir():
            return
        for summary in sorted(self.sweep_dir.rglob(SUMMARY_FILE)):
            if summary not in self._seen and self._before.get(summary, -1.0) != _mtime(summary):
                self._count(summary, None)

    def close(self) -> None:
        """The sweep ended: count what the watcher has not seen yet, clear the bar, restore stdout and stderr."""
        self._stop_watching.set()
        self._watcher.join()
        if not self._in_process.is_set():
            self._scan()
        self._log(f"sweep: ended after {tqdm.format_interval(time.monotonic() - self.start)}")
        for handler in self.log.handlers:
            handler.close()
        if self.bar is not None:
            self.bar.close()
            sys.stdout, sys.stderr = self._streams
            for stream in self._streams:
                stream.flush()


class AboveBar:
    """A stream that writes each complete line above the bars on ``bar_stream``
    (tqdm's ``external_write_mode``), so that the bar stays the last line of the terminal."""

    def __init__(self, stream, bar_stream):
        self._stream, self._bar_stream, self._partial = stream, bar_stream, ""

    def write(self, text: str) -> int:
        self._partial += text
        if "\n" in self._partial:
            lines, _, self._partial = self._partial.rpartition("\n")
            with tqdm.external_write_mode(file=self._bar_stream):
                self._stream.write(lines + "\n")
                self._stream.flush()
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)


_current: SweepProgress | None = None


def start_sweep(sweep_dir: str | Path, total: int | None, show: str = "auto") -> SweepProgress:
    """The sweep's progress, which :func:`current_sweep` returns until :func:`end_sweep`."""
    global _current
    _current = SweepProgress(sweep_dir, total, show)
    return _current


def current_sweep() -> SweepProgress | None:
    """The progress of the sweep running in this process (the batched launcher reports its chunks to it)."""
    return _current


def end_sweep() -> None:
    global _current
    if _current is not None:
        _current.close()
    _current = None


def _sweep_log(sweep_dir: Path) -> logging.Logger:
    """The logger of ``SWEEP_DIR/sweep.log``: one of its own, outside ``logging``'s tree, so that
    Hydra configuring every job's logging neither moves nor closes its handler."""
    log = logging.Logger("runner.sweep", logging.INFO)
    log.propagate = False
    handler = logging.FileHandler(sweep_dir / SWEEP_LOG, delay=True)  # opened by the first line
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s"))
    log.addHandler(handler)
    return log


def _width(stream) -> dict:
    """tqdm's width settings: the terminal's, as it changes; 80 columns on one that says it has none
    (a pseudo-terminal nobody sized, where tqdm would draw nothing: a bar 0 wide, below row 0)."""
    try:
        size = os.get_terminal_size((sys.stderr if stream is None else stream).fileno())
    except (AttributeError, ValueError, OSError):  # not a terminal (show=true): tqdm's own default
        return {}
    return {"dynamic_ncols": True} if size.columns > 0 and size.lines > 0 else {"ncols": 80, "nrows": 24}


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return -1.0


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
