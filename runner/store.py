"""Every file the runner reads or writes, and every file name: a run's, a chunk's and a sweep's.

* a run (a job folder): ``trace.parquet`` (one row per iterate) and ``summary.json`` (its outcome);
* a chunk of the batched launcher: ``parts/<name>.traces.parquet`` and ``parts/<name>.runs.parquet``;
* a sweep: ``runs.parquet`` and ``traces.parquet`` (written by :mod:`runner.tables`), ``figures/``.

Every file is written atomically: to a temporary name in the same folder, then
renamed. ``summary.json`` is written last, so a folder whose summary is
missing never holds a run that looks complete.
"""

from __future__ import annotations

import json
import os
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
MULTIRUN_FILE = "multirun.yaml"  # Hydra writes it in every sweep folder, before any job runs
FIGURES_DIR = "figures"
VERSIONED_PACKAGES = ("runner", "numpy", "scipy", "pandas", "pyarrow", "hydra-core", "omegaconf", "matplotlib")


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` and rename the result onto ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


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
