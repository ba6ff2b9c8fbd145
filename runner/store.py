"""Every file the runner reads or writes, and every file name: a run's, a chunk's and a sweep's.

* a run (a job folder): ``trace.parquet`` (one row per iterate) and ``summary.json`` (its outcome);
* a chunk of the batched launcher: ``parts/<name>.traces.parquet`` and ``parts/<name>.runs.parquet``;
* a sweep: ``runs.parquet`` and ``traces.parquet`` (written by :mod:`runner.tables`), ``figures/``.

Every file is written atomically: to a temporary name in the same folder, then
renamed. ``summary.json`` is written last, so a folder whose summary is
missing never holds a run that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from runner.columns import COLUMN_TYPES, jsonable, typed_array
from runner.splice import CannotSplice, Joiner, splice
from runner.trace import FINAL_STATUSES, RunResult

TRACE_FILE = "trace.parquet"
SUMMARY_FILE = "summary.json"
RUNS_FILE = "runs.parquet"
TRACES_FILE = "traces.parquet"
PARTS_DIR = "parts"
MULTIRUN_FILE = "multirun.yaml"  # Hydra writes it in every sweep folder, before any job runs
FIGURES_DIR = "figures"
SWEEP_LOG = "sweep.log"  # one line per job or chunk that ended (runner.progress)
# The project's distribution on the package index ("runner" is another project's name there):
# a summary's versions["runner"] is its version.
DISTRIBUTION = "optim-runner"
REPORT_FILE = "report.html"  # the page of a sweep or run folder (runner.report)
HYDRA_RUN_DIR = ".hydra"  # Hydra's record of a run or a job run one by one: config.yaml, hydra.yaml, overrides.yaml
VERSIONED_PACKAGES = ("runner", "numpy", "scipy", "pandas", "pyarrow", "hydra-core", "omegaconf", "matplotlib")


class WriteError(OSError):
    """A file that could not be written: ``str()`` is one line naming the file and the reason.

    An :class:`OSError` (its ``errno`` and ``strerror`` are the cause's), so that callers
    catching OSError still catch it.
    """

    def __init__(self, path: Path, cause: OSError):
        super().__init__(cause.errno, cause.strerror or str(cause), str(path))

    def __str__(self) -> str:
        return f"{self.filename} could not be written ({self.strerror})"

    def __reduce__(self):  # rebuilt from its path and cause: a figure's process sends it to the sweep's
        return WriteError, (Path(self.filename), OSError(self.errno, self.strerror))


class WriteInterrupted(KeyboardInterrupt):
    """Ctrl-C while a file was written (the second one, when the first stopped a run):
    the file is left as it was. ``str()`` names it."""

    def __init__(self, path: Path):
        super().__init__(f"{path} was not written (interrupted while writing it)")
        self.path = path

    def __reduce__(self):  # rebuilt from its path, not from its message
        return WriteInterrupted, (self.path,)


def temp_name(path: Path, pid: int | None = None) -> Path:
    """Where :func:`atomic_write` writes ``path`` before renaming it: ``.<name>.<pid>.tmp`` beside it."""
    return path.with_name(f".{path.name}.{os.getpid() if pid is None else pid}.tmp")


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` and rename the result onto ``path``.

    ``path`` is either the new file or left as it was. A failure raises :class:`WriteError`
    (an OSError naming ``path``), Ctrl-C :class:`WriteInterrupted`; the temporary file is
    removed either way (a killed process leaves it: :func:`remove_stale_temps`).
    """
    path = Path(path)
    tmp = temp_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except WriteError:
        raise
    except OSError as err:
        raise WriteError(path, err) from err
    except WriteInterrupted:
        raise
    except KeyboardInterrupt:
        raise WriteInterrupted(path) from None
    finally:
        tmp.unlink(missing_ok=True)


_TEMP = re.compile(r"^\..+\.(\d+)\.tmp$")


def remove_stale_temps(folder: Path, *, recursive: bool = True) -> list[Path]:
    """Remove the temporary files that killed writes left below ``folder`` (in it alone unless ``recursive``;
    :func:`temp_name`); return them.

    A temporary file is stale when the process that wrote it is gone, or when a process with its
    pid started after the file was last written (the pid was reused). A live writer's file,
    this process's own included, is kept. Pids are this machine's: a folder written to from
    another machine at the same time is not for this function.
    """
    removed = []
    folder = Path(folder)
    for tmp in folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp"):
        match = _TEMP.match(tmp.name)
        if match is None or not tmp.is_file():
            continue
        pid = int(match.group(1))
        try:
            if pid == os.getpid() or (_alive(pid) and tmp.stat().st_mtime >= _started(pid)):
                continue
            tmp.unlink()
        except OSError:  # gone meanwhile, or not ours to remove: leave it
            continue
        removed.append(tmp)
    return removed


def _started(pid: int) -> float:
    """When process ``pid`` started (seconds since the epoch), from /proc (Linux); 0 where unknown,
    which keeps a live process's file."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        ticks = int(fields[19])  # field 22, starttime: clock ticks after boot (fields 1-2 are before the ")")
        lines = Path("/proc/stat").read_text().splitlines()
        boot = next(int(line.split()[1]) for line in lines if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return 0.0


# A job's folder name: past these, a name is cut short and given a hash (see job_dir).
NAME_MAX_BYTES = 255  # one path component, on the common file systems
JOB_NAME_MAX = 200  # the whole name below the sweep folder, in characters
_SHORT_VALUE = 24  # characters of each value kept in a shortened name


def job_dir(dirname: str, item_sep: str = "/", kv_sep: str = "=") -> str:
    """A job's folder below the sweep folder, from its override dirname (``lr=0.1/optimizer=momentum``).

    The dirname itself when it is a safe relative path: every component a ``key=value`` of at most
    :data:`NAME_MAX_BYTES` bytes, not starting with ``.`` (``..``, a hidden folder), no backslash or NUL,
    and the whole at most :data:`JOB_NAME_MAX` characters. Otherwise (a 50-D ``objective.x0``, a value holding a ``/``)
    one component: the overrides, each value cut to a few characters, and a hash of the whole
    dirname, ``objective.x0=[0.1,0.2,0.3,0.4,0.5,0...-3f9a1c2b``. Both launchers name jobs with it.
    """
    if _safe_dirname(dirname, kv_sep):
        return dirname
    items = []
    for item in dirname.split(item_sep):
        key, sep, value = item.partition(kv_sep)
        if len(value) > _SHORT_VALUE:
            value = value[: _SHORT_VALUE - 3] + "..."
        items.append(key + sep + value)
    readable = re.sub(r"[/\\\x00]", "_", ",".join(items)).lstrip(".")
    readable = readable.encode()[:120].decode(errors="ignore")
    digest = hashlib.sha256(dirname.encode()).hexdigest()[:8]
    return f"{readable}-{digest}" if readable else digest


def _safe_dirname(dirname: str, kv_sep: str) -> bool:
    if dirname == "":
        return True  # no overrides: Hydra's own choice, the sweep folder itself
    if len(dirname) > JOB_NAME_MAX or "\\" in dirname or "\x00" in dirname:
        return False
    parts = dirname.split("/")
    return all(
        # a component starting with "." is a hidden folder, which the tables skip (job_summaries)
        not part.startswith(".") and part != "" and kv_sep in part and len(part.encode()) <= NAME_MAX_BYTES
        for part in parts
    )


def read_table(path: Path, columns: list[str] | None = None, *, read_dictionary: list[str] | None = None) -> pa.Table:
    """A parquet file of the runner's (a trace, a chunk, a sweep table) as a table.

    A column that is not in the file raises ``pyarrow.ArrowInvalid``, as ``pq.read_table`` does.
    """
    # pq.ParquetFile, not pq.read_table: read_table imports pyarrow.dataset, which imports pandas (0.3 s of a sweep).
    with pq.ParquetFile(path, read_dictionary=read_dictionary) as file:
        if columns is not None and (missing := [c for c in columns if c not in file.schema_arrow.names]):
            raise pa.ArrowInvalid(f"No match for FieldRef.Name({missing[0]}) in {path}")
        return file.read(columns=columns)


def read_schema(path: Path) -> pa.Schema:
    return pq.read_schema(path)


def write_table(path: Path, table: pa.Table, **options) -> None:
    """``table`` as one parquet file, written atomically; ``options`` are ``pq.write_table``'s."""
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, **options))


def write_row_groups(path: Path, schema: pa.Schema, tables: Iterable[pa.Table], **options) -> None:
    """Each of ``tables`` (all of ``schema``) as a row group of one parquet file, written atomically as
    they come: a file bigger than memory is written one group at a time."""

    def write(tmp):
        with pq.ParquetWriter(tmp, schema, **options) as writer:
            for table in tables:
                writer.write_table(table)

    atomic_write(path, write)


def trace_file_options(schema: pa.Schema) -> dict:
    """How every trace file is written (a chunk's, a run's ``trace.parquet``, ``traces.parquet`` encoded
    again): ``pq.write_table``'s options for a table of ``schema``.

    Floating-point columns are BYTE_STREAM_SPLIT-encoded (byte k of every value together), and pages
    LZ4-compressed (the format's LZ4_RAW): an iterate changes a little from one row to the next, so its
    sign, exponent and leading bytes repeat, which the split lays side by side for LZ4 to find. Against
    plain values and Snappy (pyarrow's default), sin_cos 50-D with Adam writes 28-43 % fewer bytes (a
    lr x weight-decay chunk: 138 MB against 242 MB) in the same time, so a sweep on every core waits
    that much less on the disk.
    Only text and dictionary-encoded columns (a run's constants) get a dictionary: trying one on
    millions of distinct floats costs time and saves nothing. pyarrow, polars and DuckDB read all of it.
    """
    floats = [field.name for field in schema if pa.types.is_floating(field.type)]
    coded = [field.name for field in schema if pa.types.is_dictionary(field.type) or pa.types.is_string(field.type)]
    return {"compression": "lz4", "use_byte_stream_split": floats, "use_dictionary": coded}


def join_parquet(sources: list[Path], path: Path) -> None:
    """The rows of the parquet files ``sources``, in order, as one file at ``path``, their bytes copied
    (:func:`runner.splice.splice`); :class:`runner.splice.CannotSplice`, and ``path`` as it was, where they
    cannot be joined so."""
    atomic_write(path, lambda tmp: splice(sources, tmp))


def built_after_its_runs(table_path: Path, sweep_dir: Path, summaries: list[Path] | None = None) -> bool:
    """Whether a sweep table is at least as new as every run file of ``sweep_dir`` (job summaries,
    ``summaries`` when the caller has them, and chunk files): else a run was added since it was written."""
    if not table_path.is_file():
        return False
    built = table_path.stat().st_mtime_ns
    summaries = job_summaries(sweep_dir) if summaries is None else summaries
    sources = summaries + sorted((sweep_dir / PARTS_DIR).glob("*.parquet"))
    return all(p.stat().st_mtime_ns <= built for p in sources)


def trace_table(result: RunResult, run_columns: dict, types: dict | None = None) -> pa.Table:
    """The trace as a table: per-iterate columns, then the run's constant columns.

    A constant column's type is ``types[name]``, else :data:`COLUMN_TYPES`, else its value's.
    """
    trace = result.trace
    n = len(trace.f)
    columns = {
        "iteration": pa.array(trace.iteration),
        "f": pa.array(trace.f),
        "grad_norm": pa.array(trace.grad_norm),
    }
    for j, i in enumerate(trace.coords):
        columns[f"x_{i}"] = pa.array(trace.x[:, j])
    columns["time_s"] = pa.array(trace.time_s)
    columns["nfev"] = pa.array(trace.nfev)
    columns["ngev"] = pa.array(trace.ngev)
    types = {**COLUMN_TYPES, **(types or {})}
    for name, value in run_columns.items():
        columns[name] = typed_array([value], types.get(name)).take(np.zeros(n, dtype=np.int64))
    return pa.table(columns)


def write_trace(path: Path, result: RunResult, run_columns: dict, types: dict | None = None) -> None:
    table = trace_table(result, run_columns, types)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, **trace_file_options(table.schema)))


def write_summary(path: Path, summary: dict) -> None:
    text = json.dumps(jsonable(summary), indent=2, allow_nan=False) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def read_summary(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def write_text(path: Path, text: str) -> None:
    """A text file (a report page), written atomically, as UTF-8."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def read_hydra_record(folder: Path) -> dict | None:
    """What Hydra recorded of the command that made ``folder``: a sweep's ``multirun.yaml``, or a run's
    ``.hydra/config.yaml`` with its ``hydra.yaml`` node, as a plain dict (no interpolation resolved);
    None when there is none or it does not read."""
    import yaml  # Hydra's own YAML reader (PyYAML): only what reads Hydra's records needs it

    folder = Path(folder)
    try:
        if (folder / MULTIRUN_FILE).is_file():
            record = yaml.safe_load((folder / MULTIRUN_FILE).read_text())
        elif (folder / HYDRA_RUN_DIR / "config.yaml").is_file():
            record = yaml.safe_load((folder / HYDRA_RUN_DIR / "config.yaml").read_text()) or {}
            hydra_file = folder / HYDRA_RUN_DIR / "hydra.yaml"
            if hydra_file.is_file():
                record.update(yaml.safe_load(hydra_file.read_text()) or {})
        else:
            return None
    except (OSError, yaml.YAMLError):
        return None
    return record if isinstance(record, dict) else None


def package_versions() -> dict:
    from importlib import metadata  # here, not at the top: a batched sweep never asks (20-30 ms to import)

    versions = {"python": sys.version.split()[0]}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version({"runner": DISTRIBUTION}.get(name, name))
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


# The keys a finished run's summary holds (runner.trace.summary_record): without one of them, it is not a run's record.
SUMMARY_KEYS = ("run_id", "config_hash", "status")


def completed_summary(
    output_dir: Path, config_hash: str, report: Callable[[Path, str], None] | None = None
) -> dict | None:
    """The summary of a finished run of the same config in ``output_dir``, if there is one.

    Finished means read, not merely present: the summary is a run's record (a dict with
    :data:`SUMMARY_KEYS`) with a final status, and the trace is a readable parquet file of
    ``iterations + 1`` rows, or the summary's ``trace_rows`` (its footer read, not its data). A folder
    that holds files but no such run gets ``report(file, "is not readable (...)")``, so that its
    rerun says which file and why.
    """
    summary, problem = finished_run(output_dir, config_hash)
    if problem is not None and report is not None:
        report(*problem)
    return summary


def finished_run(output_dir: Path, config_hash: str) -> tuple[dict | None, tuple[Path, str] | None]:
    """``(summary, None)`` for a finished run of ``config_hash`` in ``output_dir``, else ``(None, problem)``:
    ``(file, what is wrong with it)``, or None when there is no run, or one of another config, unfinished
    or failed (run again, as ever)."""
    path = Path(output_dir) / SUMMARY_FILE
    if not path.is_file():
        return None, None
    try:
        summary = read_summary(path)
    except (OSError, ValueError) as err:
        return None, (path, f"is not readable ({type(err).__name__}: {_first_line(err)})")
    if not isinstance(summary, dict) or (missing := [k for k in SUMMARY_KEYS if k not in summary]):
        what = f"a JSON {type(summary).__name__}" if not isinstance(summary, dict) else f"no {', '.join(missing)}"
        return None, (path, f"is not a run's summary ({what})")
    if summary.get("config_hash") != config_hash or summary.get("status") not in FINAL_STATUSES:
        return None, None
    # A trace holds iterations + 1 rows, but for some scipy methods and sampled traces: the summary says how many.
    iterations = summary.get("iterations")
    rows = summary.get("trace_rows", iterations + 1 if _is_int(iterations) else None)
    if not _is_int(rows) or rows < 1:
        return None, (path, f"is not a finished run's summary (trace_rows: {rows!r})")
    trace = path.parent / TRACE_FILE
    problem = trace_problem(trace, rows)
    return (None, (trace, problem)) if problem else (summary, None)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parquet_rows(path: Path) -> int:
    """The row count of a parquet file, from its footer alone (raises if the file is absent or not parquet)."""
    return pq.ParquetFile(path).metadata.num_rows


def trace_problem(path: Path, rows: int | None = None) -> str | None:
    """What is wrong with a parquet file (``is missing``, ``is not readable (...)``, ``has N rows, expected
    M``), or None when its footer reads and gives ``rows`` rows (any, for None)."""
    if not Path(path).is_file():
        return "is missing"
    try:
        found = parquet_rows(path)
    except (OSError, pa.ArrowException) as err:
        return f"is not readable ({_first_line(err)})"
    if rows is not None and found != rows:
        return f"has {found} rows, expected {rows}"
    return None


def _first_line(err: Exception) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


# ----------------------------------------------------------------------------- one writer per folder

LOCK_FILE = ".runner.lock"
# Who holds the lock, for the message of the writer that waits; the lock file itself is
# truncated by every attempt to take it, so the note lives beside it.
LOCK_NOTE = ".runner.lock.json"


def _holder(folder: Path) -> str:
    """``pid N, since T`` from the lock note, or ``holder unknown`` when the note is absent, unreadable,
    or left by a process that is gone (a killed holder's lock is released by the OS, not its note)."""
    try:
        note = json.loads((folder / LOCK_NOTE).read_text())
        pid, since = int(note["pid"]), note["since"]
    except (OSError, ValueError, TypeError, KeyError):
        return "holder unknown"
    if not _alive(pid):
        return "holder unknown"
    return f"pid {pid}, since {since}"


def _alive(pid: int) -> bool:
    if os.name == "nt":  # there os.kill ends the process whatever the signal: no way to only ask
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # another user's process, or a pid out of range: kept, as if alive
        return True
    return True


@contextmanager
def folder_lock(folder: Path, what: str = "sweep", *, timeout: float = -1, say: Callable[[str], None] | None = None):
    """Hold ``folder``'s writer lock (``<folder>/.runner.lock``) for the ``with`` block: one writer per folder.

    A second writer says once ``another <what> is writing to <folder> (pid N, since T); waiting``
    through ``say`` (default: stderr) and waits for it, at most ``timeout`` seconds (-1: as long as
    it takes), then raises :class:`FolderBusy` with that line. The lock is the OS's (``flock``
    through ``filelock``): a killed writer's lock is released with its process, so a stale lock
    never blocks, and its note (pid, start time) is trusted only while that pid lives.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        line = f"another {what} is writing to {folder} ({_holder(folder)})"
        if timeout == 0:
            raise FolderBusy(line) from None
        (say or _to_stderr)(f"{line}; waiting")
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise FolderBusy(line) from None
    try:
        note = {"pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        atomic_write(folder / LOCK_NOTE, lambda tmp: Path(tmp).write_text(json.dumps(note)))
        yield
    finally:
        with suppress(OSError):
            (folder / LOCK_NOTE).unlink()
        lock.release()


class FolderBusy(RuntimeError):
    """Another writer holds a folder's lock (the message is one line naming the folder and the holder)."""


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- a sweep's files


def sweep_jobs(path: Path) -> dict[Path, list[Path]]:
    """The sweeps at or below ``path``, each with the ``summary.json`` of every job folder of it.

    Folders are known by their files, never by their names (a job's folder may be named by any
    override value, ``.hidden`` and ``parts`` included): a job folder holds ``summary.json``; a
    sweep folder holds :data:`RUNS_FILE`, :data:`TRACES_FILE`, Hydra's ``multirun.yaml`` or chunk
    files in ``parts/``. A job belongs to the nearest sweep folder above it, else to ``path`` (a
    run's folder, or a folder of job folders). A sweep without jobs maps to ``[]``.
    """
    root = Path(path)
    sweeps: dict[Path, list[Path]] = {}
    # os.walk, top down, so that a folder's sweep is known before its subfolders are visited.
    owner = {root: root}
    for folder, subfolders, files in os.walk(root):
        folder = Path(folder)
        names = set(files)
        parent_sweep = owner[folder]
        if SUMMARY_FILE in names:
            sweeps.setdefault(parent_sweep, []).append(folder / SUMMARY_FILE)
        elif _is_sweep_folder(folder, names, subfolders):
            parent_sweep = folder
            sweeps.setdefault(folder, [])
        for sub in subfolders:
            owner[folder / sub] = parent_sweep
    return {sweep: sorted(found) for sweep, found in sorted(sweeps.items())}


def _is_sweep_folder(folder: Path, files: set[str], subfolders: list[str]) -> bool:
    if files & {RUNS_FILE, TRACES_FILE, MULTIRUN_FILE}:
        return True
    return PARTS_DIR in subfolders and any(chunk_files(folder, RUNS_FILE) + chunk_files(folder, TRACES_FILE))


def job_summaries(sweep_dir: Path) -> list[Path]:
    """Every ``summary.json`` of a job folder of the sweep ``sweep_dir`` (:func:`sweep_jobs`)."""
    return sweep_jobs(sweep_dir).get(Path(sweep_dir), [])


def chunk_files(sweep_dir: Path, table: str) -> list[Path]:
    """The batched launcher's chunk files of ``table`` (:data:`RUNS_FILE` or :data:`TRACES_FILE`),
    in name order; the runs and traces of one chunk share the name before it."""
    return sorted(p for p in (Path(sweep_dir) / PARTS_DIR).glob(f"*.{table}") if p.is_file())


def chunk_file(sweep_dir: Path, name: str, table: str) -> Path:
    """Chunk ``name``'s file of ``table`` (:data:`RUNS_FILE` or :data:`TRACES_FILE`): ``parts/<name>.<table>``."""
    return Path(sweep_dir) / PARTS_DIR / f"{name}.{table}"


def write_part(
    sweep_dir: Path,
    name: str,
    runs: list[pa.Table] | Callable[[], list[pa.Table]],
    traces: list[pa.Table],
    threads: int = 1,
) -> None:
    """Write a chunk as ``parts/<name>.traces.parquet``, then ``parts/<name>.runs.parquet``.

    One file each, holding exactly the rows and columns the sweep's tables hold for these
    runs: the sweep's tables join them (:func:`runner.tables.write_tables`), the traces byte for byte.
    ``runs`` may be the function that builds the runs tables: it is then called while another
    thread writes the traces file (Arrow's writer releases the GIL), and when it raises, or Ctrl-C
    comes, the traces file is removed once written (a traces file without its runs file holds no
    runs: :func:`repair_parts`). ``threads``: how many threads may write the traces file
    (:func:`write_chunk_traces`).
    """
    (Path(sweep_dir) / PARTS_DIR).mkdir(parents=True, exist_ok=True)
    trace_table = pa.concat_tables(traces, promote_options="permissive")
    traces_path = chunk_file(sweep_dir, name, TRACES_FILE)

    def write_traces() -> None:
        write_chunk_traces(traces_path, trace_table, threads)

    # Traces first: a runs part is only there once its traces are.
    if callable(runs):
        runs = _while_writing(write_traces, runs, traces_path, chunk_file(sweep_dir, name, RUNS_FILE))
    else:
        write_traces()
    runs_table = pa.concat_tables(runs, promote_options="permissive")
    atomic_write(chunk_file(sweep_dir, name, RUNS_FILE), lambda tmp: pq.write_table(runs_table, tmp))


def cores() -> int:
    """The cores this process may run on (its CPU affinity, where the system has one)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


# Below this many rows a traces file is written by one thread: the rows of a thread's share must
# outweigh starting it and the join.
SPLIT_WRITE_ROWS = 200_000


def write_chunk_traces(path: Path, table: pa.Table, threads: int = 1) -> None:
    """A chunk's traces file, written atomically: :func:`trace_file_options`, without the Arrow schema, so that
    the dictionary-encoded constants read back in their plain types, and without statistics (a sixth of
    the writing time; nothing reads them in a chunk file).

    With ``threads`` > 1 and at least :data:`SPLIT_WRITE_ROWS` rows, the rows are cut into ``threads``
    consecutive shares, each written by its own thread (Arrow's writer releases the GIL) to a temporary
    file, and the shares' row groups are then joined byte for byte (:func:`runner.splice.splice`): the
    same rows in the same order, in as many row groups. The shares' files are removed whatever happens;
    a failure or Ctrl-C is :func:`atomic_write`'s, as for one thread.
    """
    options = {"store_schema": False, "write_statistics": False, **trace_file_options(table.schema)}
    threads = max(1, min(threads, table.num_rows // SPLIT_WRITE_ROWS))
    atomic_write(path, lambda tmp: _write_in_shares(table, tmp, threads, options))


def _write_in_shares(table: pa.Table, out: Path, threads: int, options: dict) -> None:
    """``table`` written to ``out`` by ``threads`` threads, a share of its rows each, then joined."""
    if threads == 1:
        pq.write_table(table, out, **options)
        return
    from concurrent.futures import ThreadPoolExecutor

    bounds = [table.num_rows * k // threads for k in range(threads + 1)]
    shares = [temp_name(out.with_name(f"{out.name}.{k}")) for k in range(threads)]
    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            written = [
                pool.submit(pq.write_table, table.slice(lo, hi - lo), share, **options)
                for share, lo, hi in zip(shares, bounds, bounds[1:], strict=False)
            ]
            for writing in written:
                writing.result()
        try:
            splice(shares, out)
        except CannotSplice:  # not expected of files this writer wrote alike: then one thread writes it all
            pq.write_table(table, out, **options)
    finally:
        for share in shares:
            share.unlink(missing_ok=True)


def _while_writing(write: Callable[[], None], build: Callable[[], list], written: Path, runs_path: Path) -> list:
    """``build()``'s result, called while another thread runs ``write()``, which writes ``written``. When
    either raises, or Ctrl-C comes, ``written`` is removed once the thread has ended, and the error raised
    (``write``'s first; Ctrl-C as :class:`WriteInterrupted` of ``runs_path``, the file not written)."""
    from concurrent.futures import ThreadPoolExecutor, wait

    with ThreadPoolExecutor(max_workers=1) as pool:
        writing = pool.submit(write)
        try:
            built = build()
            writing.result()
        except BaseException as err:
            wait([writing])
            written.unlink(missing_ok=True)
            if writing.exception() is not None:
                raise writing.exception() from None
            if isinstance(err, KeyboardInterrupt) and not isinstance(err, WriteInterrupted):
                raise WriteInterrupted(runs_path) from None
            raise
    return built


class TracesJoin:
    """A new sweep's ``traces.parquet``, joined from its chunk files as its chunks end
    (:class:`runner.splice.Joiner`), so that the copying is done while the other chunks still run.

    ``ended(k, name)`` says chunk k, named ``name``, ended (with its trace file, if it wrote one); the files are
    joined in chunk order, the name order of :func:`chunk_files`. :meth:`finish` renames the
    result onto ``traces.parquet`` only when it holds every run of the sweep folder: every chunk
    file, in order, and no job folder. Anything else (a chunk that failed, runs that ran alone,
    a file that cannot be joined, a full disk) leaves the file to :func:`runner.tables.write_tables`,
    as without this. The file is written as ``.traces.parquet.<pid>.tmp``: a killed sweep leaves a
    stale temporary file, nothing else.
    """

    def __init__(self, sweep_dir: Path):
        self.sweep_dir = Path(sweep_dir)
        self.joiner = Joiner(temp_name(self.sweep_dir / TRACES_FILE))
        self.ended_chunks: dict[int, Path | None] = {}
        self.next = 0
        self.given_up = False

    def ended(self, k: int, name: str) -> None:
        if self.given_up:
            return
        path = chunk_file(self.sweep_dir, name, TRACES_FILE)
        self.ended_chunks[k] = path if path.is_file() else None  # a chunk whose runs all ran alone wrote none
        try:
            while self.next in self.ended_chunks:
                part = self.ended_chunks.pop(self.next)
                if part is not None:
                    self.joiner.add(part)
                self.next += 1
        except (CannotSplice, OSError):
            self.give_up()

    def give_up(self) -> None:
        self.given_up = True
        self.joiner.discard()

    def finish(self) -> bool:
        """Rename the joined file onto ``traces.parquet`` when it holds every run of the folder; whether it did."""
        joined = [path for path, *_ in self.joiner.added]
        complete = not self.given_up and joined and joined == chunk_files(self.sweep_dir, TRACES_FILE)
        if complete and not job_summaries(self.sweep_dir):
            try:
                self.joiner.finish()
                os.replace(self.joiner.out_path, self.sweep_dir / TRACES_FILE)
                return True
            except (CannotSplice, OSError):
                pass
        self.give_up()
        return False


def joined_already(sweep_dir: Path) -> bool:
    """Whether the sweep's ``traces.parquet`` holds the rows of exactly its chunk files, and it has no job
    folders: :class:`TracesJoin` wrote it, after every chunk file (their rows counted from the footers)."""
    table = Path(sweep_dir) / TRACES_FILE
    parts = chunk_files(sweep_dir, TRACES_FILE)
    if not parts or not table.is_file() or job_summaries(sweep_dir):
        return False
    if not built_after_its_runs(table, sweep_dir, summaries=[]):
        return False
    try:
        return parquet_rows(table) == sum(parquet_rows(p) for p in parts)
    except (OSError, pa.ArrowException):
        return False


def earlier_runs(
    sweep_dir: Path, report: Callable[[Path, str], None] | None = None, *, repair: bool = True
) -> tuple[dict, set]:
    """What earlier launches left in the sweep's chunk files: the outcome of each finished run by
    ``(job, config_hash)``, and every job that has a run there.

    The chunk files are checked first (:func:`repair_parts`): what a crash or a damaged file left
    is taken out, and ``report(file, what is wrong)`` says so. A job with runs in two chunks
    (from before folders were locked) counts as unfinished, so that it runs once more, alone.
    With ``repair=False`` (a dry run) nothing is written: a chunk that the repair would change
    holds no finished run here.
    """
    if repair:
        repair_parts(sweep_dir, report)
    finished, present, twice = {}, set(), set()
    for path in chunk_files(sweep_dir, RUNS_FILE):
        if not repair and not _whole_chunk(path):
            continue
        for row in read_table(path, columns=["job", "config_hash", "status", "message", "f"]).to_pylist():
            if row["job"] in present:
                twice.add(row["job"])
            present.add(row["job"])
            if row["status"] in FINAL_STATUSES:
                finished[(row["job"], row["config_hash"])] = {k: row[k] for k in ("status", "message", "f")}
    return {key: value for key, value in finished.items() if key[0] not in twice}, present


def _whole_chunk(runs_path: Path) -> bool:
    """A chunk :func:`repair_parts` would leave as it is: both files read, with each run's ``trace_rows``."""
    try:
        expected = sum(trace_rows(runs_path).to_pylist())
    except (OSError, pa.ArrowException):
        return False
    return trace_problem(_traces_of(runs_path), expected) is None


def _traces_of(runs_path: Path) -> Path:
    return runs_path.with_name(runs_path.name[: -len(RUNS_FILE)] + TRACES_FILE)


def repair_parts(sweep_dir: Path, report: Callable[[Path, str], None] | None = None) -> None:
    """Make every chunk a pair of readable files whose traces hold the ``trace_rows`` of each of
    its runs and no other rows; what cannot be made so is taken out (its jobs then run again).

    * a traces file without its runs file (a launch killed between the two): removed;
    * a runs or traces file that is missing or does not read (its footer): the chunk is removed;
    * a traces file whose row count (its footer) is not the runs' ``trace_rows`` summed (a
      launch killed while :func:`drop_runs` rewrote the chunk): each run keeps its rows if all of
      them are there, else it is taken out with its rows, the traces file written first.

    Every step is a whole-file rename or removal that leaves the chunk in one of these states,
    so a crash at any point is repaired by the next call.
    """
    report = report or (lambda path, what: None)
    runs_files = chunk_files(sweep_dir, RUNS_FILE)
    if not runs_files and not chunk_files(sweep_dir, TRACES_FILE):
        return  # a new sweep: nothing to check, and pyarrow.compute stays unimported
    import pyarrow.compute as pc  # here, not at the top: a single run never needs it (70 ms to import)

    for traces_path in chunk_files(sweep_dir, TRACES_FILE):
        if traces_path.with_name(traces_path.name[: -len(TRACES_FILE)] + RUNS_FILE) not in runs_files:
            report(traces_path, "holds no runs (its runs file is missing)")
            traces_path.unlink(missing_ok=True)
    for runs_path in runs_files:
        traces_path = _traces_of(runs_path)
        try:
            rows = trace_rows(runs_path)
        except (OSError, pa.ArrowException) as err:
            problem, bad = f"is not readable ({_first_line(err)})", runs_path
        else:
            problem, bad = trace_problem(traces_path), traces_path
        if problem is not None:
            report(bad, problem)
            runs_path.unlink(missing_ok=True)  # the runs first: traces without runs are removed next time
            traces_path.unlink(missing_ok=True)
            continue
        expected = pc.sum(rows).as_py() or 0
        if parquet_rows(traces_path) == expected:
            continue
        report(traces_path, f"has {parquet_rows(traces_path)} rows, expected {expected}")
        _keep_whole_runs(runs_path, traces_path)


def trace_rows(runs_path: Path) -> pa.Array:
    """The trace rows each run of a chunk has: its ``trace_rows``, or ``iterations + 1`` in a chunk
    written before sampling (no such column). One read of the runs file."""
    import pyarrow.compute as pc

    if "trace_rows" in read_schema(runs_path).names:
        return read_table(runs_path, columns=["trace_rows"])["trace_rows"].combine_chunks()
    return pc.add(read_table(runs_path, columns=["iterations"])["iterations"], 1).combine_chunks()


def _keep_whole_runs(runs_path: Path, traces_path: Path) -> None:
    """A chunk's runs whose trace rows are all there (``trace_rows``), and only their rows."""
    import pyarrow.compute as pc

    runs, traces = read_table(runs_path), read_table(traces_path)
    values, counts = pc.value_counts(traces["run_id"]).flatten()
    counts = dict(zip(values.to_pylist(), counts.to_pylist(), strict=True))
    run_ids, rows = runs["run_id"].to_pylist(), trace_rows(runs_path).to_pylist()
    keep = [counts.get(r) == n for r, n in zip(run_ids, rows, strict=True)]
    runs = runs.filter(pa.array(keep, pa.bool_()))
    kept = pc.is_in(traces["run_id"], value_set=runs["run_id"].combine_chunks())
    write_chunk_traces(traces_path, traces.filter(kept))
    write_table(runs_path, runs)


def drop_job_run(folder: Path) -> None:
    """Take the run out of a job folder (its summary, then its trace): it runs again elsewhere (batched), and as
    with :func:`drop_runs`, the new run replaces the old. Without its summary the folder holds no run."""
    for name in (SUMMARY_FILE, TRACE_FILE):
        (Path(folder) / name).unlink(missing_ok=True)


def drop_runs(sweep_dir: Path, jobs: set[str]) -> None:
    """Take the earlier runs of ``jobs`` out of the chunk files that hold them. They run again
    (unfinished, or with another config), and as with a job folder, the new run replaces the old.

    The traces file is rewritten first, then the runs file, each in one rename: a crash between
    leaves runs whose rows are gone, which :func:`repair_parts` takes out (their jobs are being
    run again anyway), never trace rows without their run.
    """
    if not jobs:
        return
    import pyarrow.compute as pc  # here, not at the top: a sweep that reruns nothing never needs it (0.1 s)

    for runs_path in chunk_files(sweep_dir, RUNS_FILE):
        runs = read_table(runs_path)
        drop = pc.is_in(runs["job"], pa.array(sorted(jobs)))
        if not pc.any(drop).as_py():
            continue
        traces_path = _traces_of(runs_path)
        traces = read_table(traces_path)
        dropped = runs.filter(drop)["run_id"].combine_chunks()
        traces = traces.filter(pc.invert(pc.is_in(traces["run_id"], value_set=dropped)))
        write_chunk_traces(traces_path, traces)
        write_table(runs_path, runs.filter(pc.invert(drop)))
