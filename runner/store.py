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
import shutil
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from runner.columns import COLUMN_TYPES, jsonable, typed_array
from runner.trace import FINAL_STATUSES, RunResult

TRACE_FILE = "trace.parquet"
SUMMARY_FILE = "summary.json"
RUNS_FILE = "runs.parquet"
TRACES_FILE = "traces.parquet"
PARTS_DIR = "parts"
FIGURES_DIR = "figures"
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


class WriteInterrupted(KeyboardInterrupt):
    """Ctrl-C while a file was written (the second one, when the first stopped a run):
    the file is left as it was. ``str()`` names it."""

    def __init__(self, path: Path):
        super().__init__(f"{path} was not written (interrupted while writing it)")
        self.path = path


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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process (or no such pid at all)
        return True
    return True


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
    """A parquet file of the runner's (a trace, a chunk, a sweep table) as a table."""
    return pq.read_table(path, columns=columns, read_dictionary=read_dictionary)


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


def copy_file(source: Path, path: Path) -> None:
    atomic_write(path, lambda tmp: shutil.copyfile(source, tmp))


def built_after_its_runs(table_path: Path, sweep_dir: Path) -> bool:
    """Whether a sweep table is at least as new as every run file below ``sweep_dir`` (job summaries
    and chunk files): else a run was added since it was written."""
    if not table_path.is_file():
        return False
    built = table_path.stat().st_mtime_ns
    sources = job_summaries(sweep_dir) + sorted((sweep_dir / PARTS_DIR).glob("*.parquet"))
    return all(p.stat().st_mtime_ns <= built for p in sources)


def trace_table(result: RunResult, run_columns: dict, types: dict | None = None) -> pa.Table:
    """The trace as a table: per-iterate columns, then the run's constant columns.

    A constant column's type is ``types[name]``, else :data:`COLUMN_TYPES`, else its value's.
    """
    trace = result.trace
    n = len(trace.f)
    columns = {
        "iteration": pa.array(np.arange(n, dtype=np.int64)),
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
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def write_summary(path: Path, summary: dict) -> None:
    text = json.dumps(jsonable(summary), indent=2, allow_nan=False) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def read_summary(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def package_versions() -> dict:
    versions = {"python": sys.version.split()[0]}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def completed_summary(output_dir: Path, config_hash: str) -> dict | None:
    """The summary of a finished run of the same config in ``output_dir``, if there is one."""
    path = output_dir / SUMMARY_FILE
    if not path.is_file() or not (output_dir / TRACE_FILE).is_file():
        return None
    try:
        summary = read_summary(path)
    except (OSError, ValueError):
        return None
    if summary.get("config_hash") == config_hash and summary.get("status") in FINAL_STATUSES:
        return summary
    return None


# ----------------------------------------------------------------------------- a sweep's files


def job_summaries(sweep_dir: Path) -> list[Path]:
    """Every ``summary.json`` of a job folder below ``sweep_dir``, Hydra's own folders skipped."""
    found = []
    for path in sorted(Path(sweep_dir).rglob(SUMMARY_FILE)):
        relative = path.relative_to(sweep_dir).parts[:-1]
        if not any(part.startswith(".") for part in relative) and PARTS_DIR not in relative[:1]:
            found.append(path)
    return found


def chunk_files(sweep_dir: Path, table: str) -> list[Path]:
    """The batched launcher's chunk files of ``table`` (:data:`RUNS_FILE` or :data:`TRACES_FILE`),
    in name order; the runs and traces of one chunk share the name before it."""
    return sorted((sweep_dir / PARTS_DIR).glob(f"*.{table}"))


def write_part(sweep_dir: Path, name: str, runs: list[pa.Table], traces: list[pa.Table]) -> None:
    """Write a chunk as ``parts/<name>.traces.parquet``, then ``parts/<name>.runs.parquet``.

    One file each, holding exactly the rows and columns the sweep's tables hold for these
    runs: a sweep of one chunk takes them as its tables (:func:`runner.tables.write_tables`).
    """
    parts = sweep_dir / PARTS_DIR
    parts.mkdir(parents=True, exist_ok=True)
    trace_table = pa.concat_tables(traces, promote_options="permissive")
    runs_table = pa.concat_tables(runs, promote_options="permissive")
    # Without the Arrow schema the dictionary-encoded constants (runner.batched._repeat) read back in their
    # plain types. Only those columns are worth a dictionary; statistics would cost a sixth
    # of the writing time, and neither collect() nor a table of one row group uses them.
    constants = [f.name for f in trace_table.schema if pa.types.is_dictionary(f.type)]
    # Traces first: a runs part is only there once its traces are.
    atomic_write(
        parts / f"{name}.{TRACES_FILE}",
        lambda tmp: pq.write_table(
            trace_table, tmp, store_schema=False, use_dictionary=constants, write_statistics=False
        ),
    )
    atomic_write(parts / f"{name}.{RUNS_FILE}", lambda tmp: pq.write_table(runs_table, tmp))


def earlier_runs(sweep_dir: Path) -> tuple[dict, set]:
    """What earlier launches left in the sweep's chunk files: the outcome of each finished run by
    ``(job, config_hash)``, and every job that has a run there."""
    finished, present = {}, set()
    for path in chunk_files(sweep_dir, RUNS_FILE):
        for row in pq.read_table(path, columns=["job", "config_hash", "status", "message", "f"]).to_pylist():
            present.add(row["job"])
            if row["status"] in FINAL_STATUSES:
                finished[(row["job"], row["config_hash"])] = {k: row[k] for k in ("status", "message", "f")}
    return finished, present


def drop_runs(sweep_dir: Path, jobs: set[str]) -> None:
    """Take the earlier runs of ``jobs`` out of the chunk files that hold them. They run again
    (unfinished, or with another config), and as with a job folder, the new run replaces the old."""
    if not jobs:
        return
    for runs_path in chunk_files(sweep_dir, RUNS_FILE):
        runs = pq.read_table(runs_path)
        drop = pc.is_in(runs["job"], pa.array(sorted(jobs)))
        if not pc.any(drop).as_py():
            continue
        traces_path = runs_path.with_name(runs_path.name[: -len(RUNS_FILE)] + TRACES_FILE)
        traces = pq.read_table(traces_path)
        dropped = runs.filter(drop)["run_id"].combine_chunks()
        traces = traces.filter(pc.invert(pc.is_in(traces["run_id"], value_set=dropped)))
        # The runs file first: should the traces file not follow, a dropped run's rows are left
        # without their run, never a run that is kept without its rows.
        write_table(runs_path, runs.filter(pc.invert(drop)))
        write_table(traces_path, traces, store_schema=False)
