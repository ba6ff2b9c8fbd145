"""A sweep as one dataset: ``runs.parquet`` (one row per run) and ``traces.parquet`` (every iterate).

A sweep folder holds its runs in one of two layouts, and everything here reads both:

* one folder per job (Hydra's launchers): ``<job>/summary.json`` and ``<job>/trace.parquet``,
  the job folder named by its overrides, e.g. ``lr=0.01/optimizer=momentum/seed=0``;
* chunk files (the batched launcher): ``parts/<name>.runs.parquet`` with runs-table rows and
  ``parts/<name>.traces.parquet`` with traces-table rows.

At the end of a sweep :func:`write_tables` writes the two tables (called by
:func:`runner.app.finish_sweep`), in plain types that pandas, pyarrow, polars and DuckDB
all read. The files themselves are read and written through :mod:`runner.store`. :func:`load` and
:func:`load_runs` read them back, or rebuild them from the runs when they are
missing or older than a run (a sweep still going, or resumed), file by file and only the columns
asked for; they read one sweep, a folder of several or a list of folders, found by their files
(:func:`runner.store.sweep_jobs`).
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa

from runner.columns import COLUMN_TYPES, typed_array, utc_datetime
from runner.config import config_columns, config_types
from runner.splice import CannotSplice
from runner.store import (
    PARTS_DIR,
    RUNS_FILE,
    SUMMARY_FILE,
    TRACE_FILE,
    TRACES_FILE,
    built_after_its_runs,
    chunk_files,
    job_summaries,
    join_parquet,
    joined_already,
    read_schema,
    read_summary,
    read_table,
    sweep_jobs,
    trace_file_options,
    trace_problem,
    write_row_groups,
    write_table,
)

ROW_GROUP_ROWS = 1 << 20  # rows per row group of traces.parquet (pyarrow's default)

# Numbers in summary.json that may be non-finite, written there as "inf" / "nan".
_FLOAT_FIELDS = ("f", "f_star", "f_gap", "wall_time_s", "rate_theory", "rate_measured")
_RUN_FIELDS = ("run_id", "config_hash", "config_id", "job", "status", "stop_reason", "message", "error", "traceback")
_RESULT_FIELDS = (
    *("f", "f_star", "f_gap", "iterations", "nfev", "ngev", "wall_time_s", "trace_rows", "started_at"),
    *("rate_theory", "rate_measured"),  # runner.theory.run_rates: null in tables of runs before them
)


def run_record(summary: dict, job: str, columns: dict | None = None) -> dict:
    """One runs-table row: identity, status and error, the config as columns (``columns``, when
    the caller has them: :func:`runner.config.config_columns`), the outcome.

    Its values are in their columns' types, :func:`record_types`.
    """
    record = {key: summary.get(key) for key in _RUN_FIELDS}
    record["job"] = job
    config = summary.get("config") or {}
    if _has_options(config):
        record.update(columns if columns is not None else config_columns(config))
    else:
        record.update(objective=summary.get("objective"), optimizer=summary.get("optimizer"))
    for key in _RESULT_FIELDS:
        value = summary.get(key)
        record[key] = float(value) if key in _FLOAT_FIELDS and value is not None else value
    record["started_at"] = utc_datetime(record["started_at"])
    record["config"] = json.dumps(config, sort_keys=True)
    return record


def record_types(config: dict) -> dict[str, pa.DataType]:
    """The type of each column of a runs-table row of a run of ``config`` (:func:`run_record`)."""
    return {**COLUMN_TYPES, **(config_types(config) if _has_options(config) else {})}


def _has_options(config: dict) -> bool:
    return isinstance(config.get("objective"), dict) and isinstance(config.get("optimizer"), dict)


def runs_table(records: list[dict], types: dict[str, pa.DataType], *, coerced: bool = False) -> pa.Table:
    """Runs-table rows as a table: every key of any row a column of ``types[key]``, null where a row
    lacks it. A key without a type is typed by its values (:func:`runner.columns.typed_array`).
    ``coerced``: every value is of ``types`` already (the rows of runs of one config schema)."""
    keys = dict.fromkeys(key for record in records for key in record)
    return pa.table(
        {
            key: typed_array([record.get(key) for record in records], types.get(key), coerced=coerced and key in types)
            for key in keys
        }
    )


def _concat(tables: list[pa.Table]) -> pa.Table | None:
    # "permissive" unifies schemas across runs: a column one optimizer lacks becomes null,
    # and an int column meets a float one (lr=1 beside lr=0.5) as float.
    tables = [t for t in tables if t is not None]
    if not tables:
        return None
    text = _clashes([t.schema for t in tables])
    return pa.concat_tables([_as_text(t, text) for t in tables], promote_options="permissive")


def _clashes(schemas: list[pa.Schema]) -> dict[str, pa.DataType]:
    """Columns whose types no promotion unifies (numbers beside text: a failed run's ``lr=abc``),
    each with the text type it is kept as, so that every run stays in the table."""
    types: dict[str, dict] = {}  # name -> its distinct types, in order
    for schema in schemas:
        for field in schema:
            types.setdefault(field.name, {})[field.type] = None
    clashes = {}
    for name, seen in types.items():
        try:
            pa.unify_schemas([pa.schema([pa.field(name, t)]) for t in seen], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            clashes[name] = _TEXT if any(pa.types.is_dictionary(t) for t in seen) else pa.string()
    return clashes


def _as_text(table: pa.Table, text: dict[str, pa.DataType]) -> pa.Table:
    for name, type_ in text.items():
        if name in table.column_names:
            i = table.column_names.index(name)
            table = table.set_column(i, name, _cast(table.column(i), type_))
    return table


def _cast(column, type_: pa.DataType):
    """``column`` as ``type_``; numbers become text as pyarrow writes them (0.5 -> "0.5")."""
    if column.type == type_:
        return column
    if type_ == _TEXT:
        return column.cast(pa.string()).dictionary_encode() if not pa.types.is_null(column.type) else column.cast(type_)
    return column.cast(type_)


def _with_constants(table: pa.Table, **columns) -> pa.Table:
    indices = pa.array(np.zeros(table.num_rows, dtype=np.int32))
    for name, value in columns.items():
        table = table.append_column(name, pa.DictionaryArray.from_arrays(indices, pa.array([value], pa.string())))
    return table


# Text columns while a sweep's traces are read and written: their values repeat over each run's
# rows, and decoding a million strings is most of what reading and writing a sweep costs. The
# tables are written without the Arrow schema, so readers see plain strings.
_TEXT = pa.dictionary(pa.int32(), pa.string())


def _is_text(type_: pa.DataType) -> bool:
    if pa.types.is_dictionary(type_):
        type_ = type_.value_type
    return pa.types.is_string(type_) or pa.types.is_large_string(type_)


def _reading_schema(schema: pa.Schema) -> pa.Schema:
    """A trace file's schema with its text columns dictionary-encoded."""
    return pa.schema([f.with_type(_TEXT) if _is_text(f.type) else f for f in schema])


@dataclass(frozen=True)
class _TraceSource:
    """A file of trace rows, and the constant columns its rows get (a job folder's status and job)."""

    path: Path
    constants: tuple = ()  # ((name, value), ...)

    @cached_property
    def file_schema(self) -> pa.Schema:
        """The file's columns as :meth:`read` reads them: text dictionary-encoded."""
        return _reading_schema(read_schema(self.path))

    def schema(self) -> pa.Schema:
        return pa.schema(list(self.file_schema) + [pa.field(name, _TEXT) for name, _ in self.constants])

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """The file's rows and constants; ``columns``: only those of them (and of the file, only those are read)."""
        fields = [f for f in self.file_schema if columns is None or f.name in columns]
        text = [f.name for f in fields if f.type == _TEXT]
        names = None if columns is None else [f.name for f in fields]
        table = read_table(self.path, columns=names, read_dictionary=text).cast(pa.schema(fields))
        return _with_constants(table, **{k: v for k, v in self.constants if columns is None or k in columns})


def collect(sweep_dir: str | Path) -> tuple[pa.Table, pa.Table]:
    """``(runs, traces)`` of every run below ``sweep_dir``, read from the runs themselves,
    in plain types (text columns as strings)."""
    runs, traces = _collect(Path(sweep_dir))
    return runs, traces.cast(pa.schema([f.with_type(_plain(f.type)) for f in traces.schema]))


def _plain(type_: pa.DataType) -> pa.DataType:
    return type_.value_type if pa.types.is_dictionary(type_) else type_


def _sources(
    sweep_dir: Path, summaries: list[Path] | None = None, *, missing_ok: bool = False
) -> tuple[pa.Table, list[_TraceSource]] | None:
    """The runs table of every run of ``sweep_dir``, and the files that hold their traces (not opened).
    ``summaries``: its jobs' ``summary.json`` files, when the caller has them (:func:`runner.store.sweep_jobs`).
    A sweep without runs is an error, or None with ``missing_ok``."""
    records, types, traces = [], {}, []
    # A file that does not read is left out with a line naming it, never the whole sweep's tables.
    for path in job_summaries(sweep_dir) if summaries is None else summaries:
        try:
            summary = read_summary(path)
        except (OSError, ValueError) as err:
            _skipped(path, sweep_dir, err)
            continue
        if not isinstance(summary, dict):
            _skipped(path, sweep_dir, f"a JSON {type(summary).__name__}, not a run's summary")
            continue
        job = path.parent.relative_to(sweep_dir).as_posix()
        records.append(run_record(summary, job))
        types = {**record_types(summary.get("config") or {}), **types}  # the first run that declares a key types it
        trace_path = path.parent / TRACE_FILE
        if summary.get("trace_file") and trace_path.is_file() and _readable(trace_path, sweep_dir):
            traces.append(_TraceSource(trace_path, (("status", summary["status"]), ("job", job))))
    runs_parts, unread = [], set()
    for p in chunk_files(sweep_dir, RUNS_FILE):
        try:
            runs_parts.append(read_table(p))
        except (OSError, pa.ArrowException) as err:
            _skipped(p, sweep_dir, err)
            unread.add(p.name[: -len(RUNS_FILE)])  # and its traces: rows without their runs
    traces += [
        _TraceSource(p)
        for p in chunk_files(sweep_dir, TRACES_FILE)
        if p.name[: -len(TRACES_FILE)] not in unread and _readable(p, sweep_dir)
    ]
    runs = _concat([runs_table(records, types) if records else None, *runs_parts])
    if runs is None and missing_ok:
        return None
    if runs is None:
        raise FileNotFoundError(
            f"no runs below {sweep_dir}: expected <job>/{SUMMARY_FILE} or {PARTS_DIR}/*.{RUNS_FILE}"
        )
    return runs, traces


def _readable(path: Path, sweep_dir: Path) -> bool:
    if (problem := trace_problem(path)) is None:
        return True
    _skipped(path, sweep_dir, problem)
    return False


def _skipped(path: Path, sweep_dir: Path, why) -> None:
    why = why if isinstance(why, str) else f"{type(why).__name__}: {str(why).strip().splitlines()[0]}"
    print(f"tables: skipped {path.relative_to(sweep_dir).as_posix()} ({why})", file=sys.stderr, flush=True)


def _no_traces() -> pa.Table:
    return pa.table({"run_id": pa.array([], pa.string())})


def _collect(sweep_dir: Path) -> tuple[pa.Table, pa.Table]:
    """As :func:`collect`, with the traces' text columns still dictionary-encoded."""
    runs, sources = _sources(sweep_dir)
    return runs, _concat([source.read() for source in sources]) or _no_traces()


def write_tables(sweep_dir: str | Path) -> pa.Table:
    """Write ``runs.parquet`` and ``traces.parquet`` for the whole sweep; return the runs.

    The traces are written file by file: at most one source file and one row group of rows
    are in memory, however big the sweep.
    """
    sweep_dir = Path(sweep_dir)
    runs, sources = _sources(sweep_dir)
    # The batched launcher joined a new sweep's traces.parquet as its chunks ended (runner.store.TracesJoin):
    # it stands when the tables read every chunk file it joined (a chunk whose runs do not read is left out).
    every_chunk = [source.path for source in sources] == chunk_files(sweep_dir, TRACES_FILE)
    if not (every_chunk and joined_already(sweep_dir)):
        _write_traces(sweep_dir / TRACES_FILE, sources)
    write_table(sweep_dir / RUNS_FILE, runs)
    return runs


def _write_traces(path: Path, sources: list[_TraceSource]) -> None:
    """The sources' rows, in order, as one parquet file.

    Chunk files of one schema are joined as they are, their row groups' bytes copied
    (:func:`runner.splice.splice`): no row is decoded, so the parent's share of a sweep run on
    every core stays a file copy. Otherwise the rows are read and encoded again, in row groups of
    about ``ROW_GROUP_ROWS``.
    """
    if not sources:
        write_table(path, _no_traces(), store_schema=False)
        return
    if all(not source.constants for source in sources):  # chunk files alone: joined byte for byte, when they can be
        try:
            join_parquet([source.path for source in sources], path)
            return
        except CannotSplice:  # schemas differ (the chunks swept different keys): the rows are encoded again
            pass
    # The columns of every source, in order of appearance; "permissive" as in _concat.
    schemas = [source.schema() for source in sources]
    text = _clashes(schemas)
    schema = pa.unify_schemas(
        [pa.schema([f.with_type(text.get(f.name, f.type)) for f in s]) for s in schemas], promote_options="permissive"
    )

    def row_groups():
        pending, rows = [], 0
        for source in sources:
            table = _aligned(source.read(), schema)
            pending.append(table)
            rows += table.num_rows
            if rows >= ROW_GROUP_ROWS:
                yield pa.concat_tables(pending)
                pending, rows = [], 0
        if pending:
            yield pa.concat_tables(pending)

    write_row_groups(path, schema, row_groups(), store_schema=False, **trace_file_options(schema))


def _aligned(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with the columns of ``schema``: cast where a type was promoted, null where it has none."""
    columns = []
    for field in schema:
        if field.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        columns.append(_cast(table.column(field.name), field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def load(path, columns: list[str] | None = None):
    """Every iteration of every run below ``path`` as one pandas DataFrame.

    ``path`` is a sweep folder, a single run's folder, a folder of several sweeps (per-job and
    batched alike), or a list of any of these (:func:`sweeps`). Columns: the trace
    columns of each run (``iteration``, ``f``, ``grad_norm``, ``x_i``, ``time_s``,
    ``nfev``, ``ngev``, ``f_star``), its config as typed columns (``lr`` float, ``seed`` int,
    ``optimizer`` string, ``optimizer.momentum`` ...), its ``status`` and its ``job`` folder, and
    ``sweep`` where the runs come from several sweeps.
    ``columns`` reads only those of them the sweep has (``["run_id", "iteration", "f"]``), and only
    those of each file, from the sweep's tables or, when these are missing or stale, from its runs:
    a big sweep's few columns, without its memory.
    """
    tables = []
    for label, sweep_dir, summaries in sweeps(path):
        if built_after_its_runs(sweep_dir / TRACES_FILE, sweep_dir, summaries):
            names = read_schema(sweep_dir / TRACES_FILE).names
            tables.append((label, read_table(sweep_dir / TRACES_FILE, columns=_among(columns, names))))
        elif (found := _sources(sweep_dir, summaries, missing_ok=True)) is not None:
            traces = _concat([source.read(columns) for source in found[1]]) or _no_traces()
            names = _among(columns, traces.column_names)
            tables.append((label, _plain_table(traces if names is None else traces.select(names))))
    return _joined(tables, path, columns).to_pandas()


def _among(columns: list[str] | None, names: list[str]) -> list[str] | None:
    return None if columns is None else [name for name in columns if name in names]


def load_runs(path):
    """One row per run below ``path``: config, status, final f, f - f*, iterations,
    evaluation counts, wall time, and the error of failed runs; ``path`` as for :func:`load`,
    and ``sweep`` where the runs come from several sweeps. No trace file is read.

    Repetitions (same config, other seed) share a ``config_id``:
    ``load_runs(d).groupby("config_id")`` groups them.
    """
    tables = []
    for label, sweep_dir, summaries in sweeps(path):
        if built_after_its_runs(sweep_dir / RUNS_FILE, sweep_dir, summaries):
            tables.append((label, read_table(sweep_dir / RUNS_FILE)))
        elif (found := _sources(sweep_dir, summaries, missing_ok=True)) is not None:
            tables.append((label, found[0]))
    return _joined(tables, path).to_pandas()


def sweeps(path) -> list[tuple[str, Path, list[Path]]]:
    """``(name, folder, job summaries)`` of every sweep at or below ``path``, a folder or a list of folders
    (:func:`runner.store.sweep_jobs`). Its name is its folder relative to ``path``, or, for a list, the
    folder as given joined with that. A folder of the list inside another one of it adds nothing."""
    single = isinstance(path, (str, os.PathLike))
    given = [Path(p) for p in ([path] if single else path)]
    if not given:
        raise ValueError("path=[]: expected a sweep folder, a run folder, a folder of sweeps or a list of them")
    for folder in given:
        if not folder.is_dir():
            raise FileNotFoundError(f"path={folder}: expected a sweep folder, a run folder or a folder of sweeps")
    resolved = [folder.resolve() for folder in given]
    found = []
    for i, folder in enumerate(given):
        # Each run once: a folder within another of the list, or given twice, is read with that one.
        if any(
            j != i and resolved[i].is_relative_to(other) and (other != resolved[i] or j < i)
            for j, other in enumerate(resolved)
        ):
            continue
        for sweep_dir, summaries in sweep_jobs(folder).items():
            name = sweep_dir.relative_to(folder)
            found.append(((name if single else folder / name).as_posix(), sweep_dir, summaries))
    return found


def _joined(tables: list[tuple[str, pa.Table]], path, columns: list[str] | None = None) -> pa.Table:
    """The sweeps' tables as one, with a ``sweep`` column where there are several."""
    if not tables:
        raise FileNotFoundError(
            f"path={path}: no runs there: expected <job>/{SUMMARY_FILE}, {PARTS_DIR}/*.{RUNS_FILE} or {RUNS_FILE}"
        )
    if len(tables) == 1:
        return tables[0][1]
    joined = _concat([_with_constants(table, sweep=label) for label, table in tables])
    names = _among(columns, joined.column_names)  # "sweep" among them only when asked for
    return _plain_table(joined if names is None else joined.select(names))


def _plain_table(table: pa.Table) -> pa.Table:
    """``table`` with its text columns as plain strings, as the sweep's tables are read."""
    return table.cast(pa.schema([f.with_type(_plain(f.type)) for f in table.schema]))


def status_counts(runs: pa.Table) -> Counter:
    return Counter(runs.column("status").to_pylist())
