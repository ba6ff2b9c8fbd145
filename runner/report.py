"""A sweep's (or a run's) report: one HTML page that opens from disk, with no network.

``python -m runner.report DIR`` writes ``DIR/report.html`` for a sweep folder or a single run's
folder; ``python -m runner.report DIR_A DIR_B [...]`` writes one page that compares the sweeps
(``report.html`` in the current folder, or ``-o OUT``), with a ``sweep`` column and curves coloured
by sweep. After every sweep (and every single run) :class:`runner.app.SweepEnd` writes it, after
the figures, which it embeds.

The page holds a header (the command, the fixed config, runs by status, wall time, versions), the
best configs (:func:`runner.best.best_configs`), every run as a table to sort and filter
(DataTables, from itables' offline bundle), the convergence curves (plotly.js), the static figures
of ``figures/`` and the failures with their tracebacks. Everything it needs is inside the file:
plotly.js once, DataTables once, the figures as base64 PNG. The HTML is written here (:func:`_html`),
with no template engine nor plotly's or itables' Python: importing those cost more than the page.
A big sweep stays small: at most :data:`MAX_CURVES` curves a plot (the best configs; the page says
so) and at most about :data:`MAX_POINTS` points a curve (the iteration numbers are the true ones).
"""

from __future__ import annotations

import argparse
import base64
import html
import importlib.util
import io
import json
import math
import shlex
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from runner.best import NO_RESULT, best_configs, fixed_settings, number, run_scores, setting_keys
from runner.store import (
    FIGURES_DIR,
    MULTIRUN_FILE,
    REPORT_FILE,
    SUMMARY_FILE,
    TRACES_FILE,
    atomic_write,
    built_after_its_runs,
    job_summaries,
    package_versions,
    read_hydra_record,
    read_schema,
    read_summary,
    read_table,
)
from runner.tables import load, load_runs, sweeps
from runner.trace import STATUSES

MAX_CURVES = 60  # curves a plot draws: the best configs (by runner.best's rank), evenly shared by the sweeps
MAX_POINTS = 400  # points a curve keeps at most: half evenly spaced in iteration, half geometrically (the early drop)
MAX_FAILURES = 50  # failures listed with their tracebacks; the table holds every run
BIG_PNG = 2_000_000  # bytes of a figure embedded as it is; a bigger one gets a palette (_compact_png, ~0.4 s a MB)
BEST_ROWS = 10  # configs per objective and optimizer in the best-configs table
TRACE_COLUMNS = ["run_id", "iteration", "f", "nfev", "ngev"]  # of the traces, those the curves draw
# The runs table's columns left out of the page's table: long text shown elsewhere, or the same for every run.
_HIDDEN = ("config", "traceback", "config_hash", "trace.x", "started_at")
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")


class NoRuns(ValueError):
    """A folder without runs, or one that is not there: one line, and nothing is written."""


def write_report(folders, out: str | Path | None = None, *, runs=None, best=None, traces=None) -> Path:
    """Write the page of ``folders`` (a folder, or a list of them) and return its path.

    One folder: ``out`` defaults to ``<folder>/report.html``; several: one comparison page, default
    ``report.html`` in the current folder. The page is built whole before it is written (atomically).

    What the caller already holds is not read or computed again: ``runs``, the runs table of ``folders``
    (pandas, or the pyarrow table :func:`runner.tables.write_tables` returns); ``best``, its
    :func:`runner.best.best_configs`; ``traces``, its trace rows (at least ``run_id``, ``iteration``,
    ``f``, ``nfev``, ``ngev``). Without them the page reads the folders' tables, and of the traces only
    the columns it draws.
    """
    given = [Path(folders)] if isinstance(folders, (str, Path)) else [Path(f) for f in folders]
    if not given:
        raise NoRuns("DIR: expected at least one sweep or run folder")
    for folder in given:
        if not folder.is_dir():
            raise NoRuns(f"DIR={folder}: expected an existing sweep or run folder")
    target = Path(out) if out is not None else (given[0] / REPORT_FILE if len(given) == 1 else Path(REPORT_FILE))
    page = _page(given, runs=runs, best=best, traces=traces)
    atomic_write(target, lambda tmp: tmp.write_bytes(page))
    return target


def render(folders: list[Path], *, runs=None, best=None, traces=None) -> str:
    """The page of ``folders`` as HTML text (``runs``, ``best``, ``traces``: as for :func:`write_report`)."""
    return _page(folders, runs=runs, best=best, traces=traces).decode("utf-8")


def _page(folders: list[Path], *, runs=None, best=None, traces=None) -> bytes:
    """The page as UTF-8 bytes."""
    source = folders[0] if len(folders) == 1 else [str(f) for f in folders]
    try:
        runs = load_runs(source) if runs is None else runs if isinstance(runs, pd.DataFrame) else runs.to_pandas()
    except FileNotFoundError as err:
        raise NoRuns(str(err).removeprefix("path=")) from None
    if runs.empty:
        raise NoRuns(f"DIR={', '.join(map(str, folders))}: no runs there")
    compare = "sweep" in runs.columns
    names = _short_names(runs["sweep"].unique()) if compare else {}
    if compare:
        runs = runs.assign(sweep=runs["sweep"].map(names))
        best = None if best is None else best.assign(sweep=best["sweep"].map(lambda s: names.get(s, s)))
    best = best_configs(runs) if best is None else best
    plots, notes = curves_html(runs, read_traces(source) if traces is None else traces, compare, best)
    failures = _failures(runs)
    before, after = _html(
        title=_title(folders, runs),
        compare=compare,
        single=len(runs) == 1 and not (folders[0] / MULTIRUN_FILE).is_file(),
        headers=[_header(label, folder, part) for label, folder, part in _parts(source, runs, names)],
        fixed=fixed_settings(runs),
        counts=_counts(runs),
        best=_best_rows(best),
        table=_runs_table(runs, compare),
        datatables=_datatables_library(),
        plots=plots,
        curve_notes=notes,
        figures=_figures(folders, compare),
        failures=failures,
        failures_total=int((runs["status"] == "failed").sum()),
        versions=_versions(folders),
    )
    return b"".join([before.encode("utf-8"), _plotly_library(), after.encode("utf-8")])


# ----------------------------------------------------------------------------- header


def _title(folders: list[Path], runs: pd.DataFrame) -> str:
    if len(folders) > 1:
        return "runner: " + " vs ".join(f.name or str(f) for f in folders)
    return f"runner: {folders[0].resolve().name} ({len(runs)} run{'s' if len(runs) != 1 else ''})"


def _short_names(labels) -> dict[str, str]:
    """Each sweep's name on the page: its folder's last part where those differ, else the label in full."""
    labels = [str(label) for label in labels]
    short = {label: Path(label).name or label for label in labels}
    return short if len(set(short.values())) == len(labels) else {label: label for label in labels}


def _parts(source, runs: pd.DataFrame, names: dict) -> list[tuple[str, Path, pd.DataFrame]]:
    """``(name, folder, its runs)`` of every sweep of the page: one, or each of a comparison."""
    found = sweeps(source)
    if "sweep" not in runs.columns:
        return [("", found[0][1] if len(found) == 1 else Path(source), runs)]
    return [(names[label], folder, runs[runs["sweep"] == names[label]]) for label, folder, _ in found if label in names]


def _counts(runs: pd.DataFrame) -> list[tuple[str, int]]:
    counts = Counter(runs["status"])
    return [(s, counts[s]) for s in STATUSES if counts[s]] + [(s, n) for s, n in counts.items() if s not in STATUSES]


def _header(label: str, folder: Path, runs: pd.DataFrame) -> dict:
    record = read_hydra_record(folder) or {}
    hydra = record.get("hydra") or {}
    overrides = hydra.get("overrides") or {}
    words = ["python -m runner"]
    for word in [*overrides.get("hydra", []), *overrides.get("task", [])]:
        if str(word).startswith("hydra.mode="):  # Hydra's record of -m (or of none)
            words += ["-m"] if str(word) == "hydra.mode=MULTIRUN" else []
        else:
            words.append(shlex.quote(str(word)))
    params = (hydra.get("sweeper") or {}).get("params") or {}
    started = pd.to_datetime(runs["started_at"], utc=True, errors="coerce") if "started_at" in runs else None
    wall = pd.to_numeric(runs["wall_time_s"], errors="coerce")
    span = None
    if started is not None and started.notna().any():
        ends = started + pd.to_timedelta(wall.fillna(0), unit="s")
        span = (ends.max() - started.min()).total_seconds()
    return {
        "label": label,
        "folder": str(folder),
        "command": " ".join(str(w) for w in words) if record else None,
        "swept": [f"{k}: {v}" for k, v in params.items()],
        "runs": len(runs),
        "counts": _counts(runs),
        "wall_total": _seconds(float(wall.sum())),
        "wall_span": _seconds(span) if span is not None else None,
        "started": str(started.min()) if started is not None and started.notna().any() else None,
    }


def _seconds(value: float) -> str:
    if value >= 120:
        return f"{value / 60:.1f} min"
    return f"{value:.3g} s"


def _versions(folders: list[Path]) -> tuple[dict, str]:
    """The versions a run recorded (its summary.json), else those of this report's environment, and which."""
    for folder in folders:
        for summary in [*job_summaries(folder)[:1], folder / SUMMARY_FILE]:
            try:
                versions = read_summary(summary).get("versions")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(versions, dict) and versions:
                return versions, f"recorded by the run in {summary.parent}"
    return package_versions(), "of the environment that wrote this page (the runs recorded none)"


# ----------------------------------------------------------------------------- tables


def _best_rows(best: pd.DataFrame) -> list[dict]:
    rows = []
    for row in best[best["rank"] <= BEST_ROWS].to_dict("records"):
        row["final"] = number(row["final"])
        row["iterations"] = number(row["iterations"])
        rows.append(row)
    return rows


def table_frame(runs: pd.DataFrame, compare: bool) -> pd.DataFrame:
    """The runs as the page's table shows them: identity, status, the swept keys, the outcome, the rest.

    One row per run. ``final`` is what the best-configs table ranks by (f - f*, or f)."""
    keys = setting_keys(runs.drop(columns=["sweep"], errors="ignore"))
    scores = run_scores(runs)
    front = [*(["sweep"] if compare else []), "job", "status", "stop_reason", *keys]
    table = {c: runs[c] for c in front if c in runs.columns}
    table["final"] = runs["f_gap"].where(scores["gap"], runs["f"]) if "f_gap" in runs else runs["f"]
    rest = [c for c in runs.columns if c not in front and c not in _HIDDEN and c not in ("f_gap",)]
    for column in ["f", "f_gap", *[c for c in rest if c != "f"]]:
        if column in runs.columns and column not in table:
            table[column] = runs[column]
    for column, values in table.items():  # list cells (objective.x0) and nulls as text a table shows
        if values.dtype == object:
            table[column] = values.map(_cell)
    return pd.DataFrame(table).reset_index(drop=True)


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (list, tuple, np.ndarray)):
        return "[" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) + "]"
    return str(value)


def _runs_table(runs: pd.DataFrame, compare: bool) -> str:
    """The runs as a DataTables table (itables' ``ITable`` from its offline bundle, :func:`_datatables_library`):
    its rows as JSON, sorted by a click on a heading, filtered by the search box and by a box under each column.

    A float cell is ``[text, value]``: the text shown (:func:`_float_texts`), the value sorted by."""
    frame = table_frame(runs, compare)
    columns, floats = [], []
    for i, name in enumerate(frame.columns):
        column = frame[name]
        if column.dtype.kind == "f":
            floats.append(i)
            # Each distinct value once (a grid repeats a few values over many runs): the rule depends only on them.
            values, which = np.unique(column.to_numpy(dtype=float), return_inverse=True)
            cells = [[t, v] for t, v in zip(_float_texts(values), _json_floats(values), strict=True)]
            columns.append([cells[k] for k in which.tolist()])
        elif column.dtype.kind in "biu":
            columns.append(column.tolist())
        else:
            texts = [v if v.__class__ is str else _cell(v) for v in column.tolist()]
            columns.append([_escape(t) for t in texts] if any(c in "".join(texts) for c in "&<>") else texts)
    heads = "".join(f"<th>{html.escape(str(name))}</th>" for name in frame.columns)
    head = f'<thead><tr style="text-align: right;">{heads}</tr></thead>'
    args = {
        "classes": ["display", "compact", "nowrap", "cell-border"],
        "columnDefs": [{"render": _SORT_BY_VALUE, "targets": floats}],
        "column_filters": "footer",
        "keys_to_be_evaluated": [["columnDefs", 0, "render"]],
        "layout": {"bottomEnd": "paging", "bottomStart": "info", "topEnd": "search", "topStart": "pageLength"},
        "lengthMenu": [10, 25, 100, 1000, -1],
        "order": [],
        "pageLength": 25,
        "scrollX": True,
        "style": {"caption-side": "bottom", "margin": "0", "table-layout": "auto", "width": "auto"},
        "table_html": f"<table>{head}<tfoot>{heads}</tfoot></table>",
        "text_in_header_can_be_selected": True,
    }
    rows = _script_json([list(row) for row in zip(*columns, strict=True)], allow_nan=False)
    # The rows stay JSON text (the bundle's data_json, which it parses itself), not a string within the options.
    return (
        '<table id="runs"></table>\n'
        f'<script type="application/json" id="runs-args">{_script_json(args)}</script>\n'
        f'<script type="application/json" id="runs-rows">{rows}</script>\n'
        '<script type="module">\nconst { ITable } = await window.runnerDataTables;\n'
        "const text = (id) => document.getElementById(id).textContent;\n"
        'const args = {...JSON.parse(text("runs-args")), data_json: text("runs-rows")};\n'
        'new ITable(document.getElementById("runs"), args);\n'
        "</script>"
    )


# A float cell's text is shown, its value sorted by (itables' own rule for the cells it formats).
_SORT_BY_VALUE = "function (data, type, row, meta) { return type === 'sort' || type === 'type' ? data[1] : data[0]; }"
_DIGITS = 6  # a float column's decimals before the common trailing zeros are cut (pandas' display precision)


def _float_texts(values: np.ndarray) -> list[str]:
    """A float column as pandas prints it: fixed with :data:`_DIGITS` decimals, less the trailing zeros all
    its numbers share (one kept), or scientific for the whole column when a value would show as 0 or a
    large one makes it long; ``NaN``, ``inf``."""
    plain, finite = values.tolist(), np.isfinite(values)
    absolute = np.abs(values[~np.isnan(values)])
    if ((absolute < 10**-_DIGITS) & (absolute > 0)).any():
        return ["NaN" if v != v else f"{v:.{_DIGITS}e}" for v in plain]
    texts = [f"{v:.{_DIGITS}f}" for v in plain]
    if finite.any():
        cut = _DIGITS - 1
        for t in (t for t, ok in zip(texts, finite, strict=True) if ok):
            cut = min(cut, len(t) - len(t.rstrip("0")))
            if not cut:
                break
        texts = [t[: len(t) - cut] if ok else t for t, ok in zip(texts, finite, strict=True)]
    if max((len(t) for t in texts), default=0) > _DIGITS + 6 and (absolute > 1e6).any():
        texts = [f"{v:.{_DIGITS}e}" for v in plain]
    return ["NaN" if v != v else t for t, v in zip(texts, plain, strict=True)]


def _json_floats(values: np.ndarray) -> list:
    """Values for ``data_json``: the bundle's JSON reader takes non-finite numbers as these strings."""
    return [v if math.isfinite(v) else _NOT_FINITE[str(v)] for v in values.tolist()]


_NOT_FINITE = {"nan": "___NaN___", "inf": "___Infinity___", "-inf": "___-Infinity___"}


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _script_json(value, allow_nan: bool = True) -> str:
    """``value`` as JSON that may stand inside a ``<script>``: no ``</`` (which would end it) nor ``<!--``."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=allow_nan)
    return text.replace("</", "<\\/").replace("<!--", "\\u003c!--")


def _package_file(package: str, *parts: str) -> Path:
    """A file shipped with ``package``, found without importing it (plotly and itables take long to import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package={package}: expected it installed (the report embeds its files)")
    return Path(next(iter(spec.submodule_search_locations)), *parts)


def _datatables_library() -> str:
    """DataTables (itables' offline bundle) inside the page: its CSS as a style, its module imported from a
    ``data:`` URL as ``window.runnerDataTables``, which the runs table awaits."""
    bundle = _package_file("itables", "html", "dt_bundle.js")
    css = bundle.with_suffix(".css").read_text(encoding="utf-8")
    module = base64.b64encode(bundle.read_bytes()).decode("ascii")
    load = f"window.runnerDataTables = import('data:text/javascript;base64,{module}');"
    return f"<style>{css}</style>\n<script>\n{load}\n</script>"


def _plotly_library() -> bytes:
    """plotly.js as plotly ships it (UTF-8)."""
    return _package_file("plotly", "package_data", "plotly.min.js").read_bytes()


# ----------------------------------------------------------------------------- curves


def _downsample(x: np.ndarray, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """At most about :data:`MAX_POINTS` of the points, the first and the last among them, x unchanged."""
    n = len(x)
    if n <= MAX_POINTS:
        return (x, *arrays)
    half = MAX_POINTS // 2
    keep = np.unique(
        np.concatenate([np.linspace(0, n - 1, half).round(), np.geomspace(1, n, half).round() - 1, [0, n - 1]]).astype(
            int
        )
    )
    return (x[keep], *(a[keep] for a in arrays))


def read_traces(source) -> pa.Table:
    """The trace rows the curves need (:data:`TRACE_COLUMNS` the sweeps have), as one pyarrow table: from each
    sweep's ``traces.parquet`` when it is current (``run_id`` read as a dictionary, not as a million strings),
    else from its runs (:func:`runner.tables.load`). An empty table when no run has a trace."""
    found = sweeps(source)
    if found and all(built_after_its_runs(folder / TRACES_FILE, folder, summaries) for _, folder, summaries in found):
        tables = []
        for _, folder, _ in found:
            names = read_schema(folder / TRACES_FILE).names
            columns = [c for c in TRACE_COLUMNS if c in names]
            dictionary = ["run_id"] if "run_id" in names else None
            tables.append(read_table(folder / TRACES_FILE, columns, read_dictionary=dictionary))
        return pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
    try:
        return _arrow(load(source, columns=TRACE_COLUMNS))
    except FileNotFoundError:
        return pa.table({})


def _arrow(traces) -> pa.Table:
    if isinstance(traces, pa.Table):
        return traces
    return pa.Table.from_pandas(traces[[c for c in TRACE_COLUMNS if c in traces.columns]], preserve_index=False)


def _ids(run_id: pa.ChunkedArray) -> set:
    """The distinct run ids of a ``run_id`` column, plain or dictionary-encoded."""
    ids = set()
    for chunk in run_id.chunks:
        if pa.types.is_dictionary(chunk.type):  # the codes in use, counted: no million strings made
            used = np.bincount(chunk.indices.drop_null().to_numpy(), minlength=len(chunk.dictionary)) > 0
            chunk = chunk.dictionary.filter(pa.array(used))
        ids.update(pc.unique(chunk).to_pylist())
    ids.discard(None)
    return ids


def _rows_by_run(traces: pa.Table, run_ids: set) -> dict[str, dict[str, np.ndarray]]:
    """The rows of ``run_ids`` as columns of numbers, each run's in iteration order: only their rows are
    taken out of ``traces``."""
    rows = traces.filter(_among_runs(traces.column("run_id"), pa.array(sorted(run_ids), pa.string())))
    if rows.num_rows == 0:
        return {}
    run = rows.column("run_id").to_pandas().astype(object).to_numpy()
    codes, names = pd.factorize(run)
    order = np.lexsort((rows.column("iteration").to_numpy(), codes))  # stable: a run's rows in their order on ties
    columns = {c: rows.column(c).to_numpy()[order] for c in rows.column_names if c != "run_id"}
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    starts, ends = np.r_[0, bounds], np.r_[bounds, len(order)]
    return {names[codes[order[i]]]: {c: v[i:j] for c, v in columns.items()} for i, j in zip(starts, ends, strict=True)}


def _among_runs(run_id: pa.ChunkedArray, wanted: pa.Array) -> pa.ChunkedArray:
    """Which rows belong to the ``wanted`` runs; a dictionary-encoded column is matched on its codes."""
    masks = []
    for chunk in run_id.chunks:
        if not pa.types.is_dictionary(chunk.type):
            masks.append(pc.fill_null(pc.is_in(chunk, value_set=wanted), False))
            continue
        keep = np.zeros(len(chunk.dictionary) + 1, dtype=bool)  # the last entry: a null run_id, never wanted
        keep[pc.index_in(wanted, value_set=chunk.dictionary).drop_null().to_numpy()] = True
        masks.append(pa.array(keep[chunk.indices.fill_null(-1).to_numpy(zero_copy_only=False)]))
    return pa.chunked_array(masks, pa.bool_())


def _counted_apart(rows: dict[str, np.ndarray]) -> bool:
    """Whether a run's evaluations (nfev + ngev) tell more than its iterations: some row's nfev or ngev is
    not iteration + 1 (a missing count too)."""
    if "nfev" not in rows or "ngev" not in rows:
        return False
    following = rows["iteration"] + 1
    return not bool(((rows["nfev"] == following) & (rows["ngev"] == following)).all())


def curves_html(runs: pd.DataFrame, traces, compare: bool, best: pd.DataFrame) -> tuple[list[dict], list[str]]:
    """One plotly chart per objective (and x: iteration, and evaluations where they differ) as HTML
    divs, and notes on what is left out. ``best``: :func:`runner.best.best_configs` of ``runs``; ``traces``:
    their trace rows (:func:`read_traces`, or a DataFrame of :data:`TRACE_COLUMNS`): only the rows of the
    runs drawn are taken out of it."""
    traces = _arrow(traces)
    if traces.num_rows == 0 or "run_id" not in traces.column_names:
        return [], []
    # The few columns curves use, as plain Python values: 60 configs are picked out of 1,000 runs.
    traced = pd.DataFrame({c: runs[c].to_numpy(dtype=object) for c in _CURVE_COLUMNS if c in runs.columns})
    has_trace = _ids(traces.column("run_id"))
    traced = traced[[rid in has_trace for rid in traced["run_id"].to_numpy()]]
    notes, drawn = [], []
    for objective, group in traced.groupby("objective", sort=True):
        present = set(group["config_id"])
        mine = np.array([c in present for c in best["config_id"].to_numpy(dtype=object)], dtype=bool)
        configs = best[mine & (best["objective"] == objective).to_numpy(dtype=bool)]
        chosen, note = _chosen(configs, compare)
        if note:
            notes.append(f"{objective}: {note}")
        runs_of = _runs_of(group, compare)
        members = [
            runs_of.get((row["config_id"], row.get("sweep") if compare else None), _NO_RUNS) for _, row in chosen
        ]
        drawn.append((objective, group, chosen, members))
    by_run = _rows_by_run(traces, {rid for *_, members in drawn for m in members for rid in m["run_id"]})
    plots = []
    for objective, group, chosen, members in drawn:
        # Evaluations get their own plot where they tell more than iterations for some run drawn.
        apart = any(_counted_apart(by_run[rid]) for m in members for rid in m["run_id"] if rid in by_run)
        for x in ["iteration"] + (["evaluations"] if apart else []):
            data, view = [], []
            for (color, row), mine in zip(chosen, members, strict=True):
                data += _config_traces(mine, by_run, row, color, x, compare, view)
            layout = _layout(objective, x, group, view, compare)
            plots.append({"objective": objective, "x": x, "html": _plot(f"curves-{len(plots)}", data, layout)})
            plots[-1]["curves"] = len(chosen)
    return plots, notes


_CURVE_COLUMNS = ("run_id", "config_id", "status", "f_star", "sweep", "objective")  # of the runs, what curves use


_NO_RUNS = {"run_id": [], "status": [], "f_star": []}


def _runs_of(group: pd.DataFrame, compare: bool) -> dict[tuple, dict[str, list]]:
    """Each config's runs (its repetitions, of its own sweep when several), keyed by (config_id, sweep):
    their ``run_id``, ``status`` and ``f_star`` (None where unknown)."""
    found = {}
    stars = group["f_star"] if "f_star" in group else [None] * len(group)
    sweeps_ = group["sweep"] if compare else [None] * len(group)
    for config, sweep, run_id, status, star in zip(
        group["config_id"], sweeps_, group["run_id"], group["status"], stars, strict=True
    ):
        runs = found.setdefault((config, sweep), {"run_id": [], "status": [], "f_star": []})
        runs["run_id"].append(run_id)
        runs["status"].append(status)
        runs["f_star"].append(star)
    return found


def _plot(div_id: str, data: list[dict], layout: dict) -> str:
    """A plotly chart as plotly.io.to_html writes it (plotly.js is in the page once): the figure's dicts are
    plotly's schema as written here, so neither plotly's figure classes nor its validation are needed."""
    config = {"displaylogo": False, "responsive": True}
    return (
        f'<div style="height:{layout["height"]}px; width:100%;">'
        f'<div id="{div_id}" class="plotly-graph-div" style="height:100%; width:100%;"></div>'
        f'<script>Plotly.newPlot("{div_id}", {_traces_json(data)}, {_script_json(layout)}, {_script_json(config)});'
        "</script></div>"
    )


def _chosen(configs: pd.DataFrame, compare: bool) -> tuple[list[tuple[str, dict]], str]:
    """The configs drawn, each with its colour: the best :data:`MAX_CURVES`, shared evenly by the sweeps."""
    if compare:
        labels = list(dict.fromkeys(configs["sweep"]))
        each = max(MAX_CURVES // max(len(labels), 1), 1)
        colors = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}
        by_sweep = {label: configs[configs["sweep"] == label] for label in labels}
        chosen = [(colors[label], r) for label in labels for r in by_sweep[label].head(each).to_dict("records")]
        shown = f"the {each} best configs of each sweep" if any(len(v) > each for v in by_sweep.values()) else ""
    else:
        picked = configs.sort_values(["rank", "optimizer"], kind="stable").head(MAX_CURVES).to_dict("records")
        chosen = [(PALETTE[i % len(PALETTE)], r) for i, r in enumerate(picked)]
        shown = f"the {len(picked)} best" if len(configs) > MAX_CURVES else ""
    note = f"showing {shown} of {len(configs)} configs (ranked as in the best-configs table); the table holds every run"
    return chosen, note if shown else ""


def _series(rows: dict[str, np.ndarray], f_star, x: str) -> tuple[np.ndarray, np.ndarray]:
    """A run's (x, f - f*), f where its f* is unknown."""
    xs = rows["nfev"] + rows["ngev"] if x == "evaluations" else rows["iteration"]
    y = np.asarray(rows["f"], dtype=float)
    try:
        f_star = float(f_star)
    except (TypeError, ValueError):  # no f*, or not a number
        f_star = math.nan
    if math.isfinite(f_star):
        y = y - f_star
    return np.asarray(xs, dtype=float), y


class _Numbers(str):
    """A curve's numbers as JSON text, put into the page's JSON as they are (:func:`_traces_json`)."""


def _traces_json(traces: list[dict]) -> str:
    """Plotly's traces as JSON for a ``<script>``, their numbers (:class:`_Numbers`) written once, as they are."""
    written = []
    for trace in traces:
        numbers = {key: value for key, value in trace.items() if isinstance(value, _Numbers)}
        # A placeholder no page text holds: json.dumps writes the NUL as \u0000.
        text = _script_json({key: f"\x00{key}" if key in numbers else value for key, value in trace.items()})
        for key, value in numbers.items():
            text = text.replace(f'"\\u0000{key}"', value, 1)
        written.append(text)
    return "[" + ",".join(written) + "]"


def _values(a: np.ndarray) -> _Numbers:
    """Numbers for the page: 6 significant digits, null where not finite (a gap in the curve)."""
    if np.isfinite(a).all() and (a == np.round(a)).all() and (np.abs(a) < 1e15).all():  # iterations
        return _Numbers("[" + ",".join(map(str, a.astype(np.int64).tolist())) + "]")
    return _Numbers("[" + ",".join(f"{v:.6g}" if math.isfinite(v) else "null" for v in a.tolist()) + "]")


def _config_traces(members, by_run, row, color, x, compare, view) -> list[dict]:
    """The config's curve: its run, or the median of its repetitions with a 25-75 % band; ``view`` gets its
    (lowest y, highest y, last x) when it is a result that did not blow up, the runs that set the view."""
    ids = [rid for rid in members["run_id"] if rid in by_run]
    f_star = dict(zip(members["run_id"], members["f_star"], strict=True))
    per_run = [_series(by_run[rid], f_star[rid], x) for rid in ids]
    if not per_run:
        return []
    setting = row["setting"] if row["setting"] != "-" else row["optimizer"]
    status = ", ".join(f"{n} {s}" for s, n in Counter(members["status"]).items())
    failing = any(s in NO_RESULT for s in members["status"])
    name = (f"{row['sweep']}: " if compare else "") + setting + (f" ({status})" if failing else "")
    hover = html.escape((f"{row['sweep']}: " if compare else "") + setting) + f"<br>{html.escape(status)}"
    if len(per_run) == 1:
        xs, ys = _downsample(*per_run[0])
        band = None
    else:
        from runner.figures._series import repetition_quantiles  # matplotlib's import, only for repetitions

        grid, (lo, mid, hi) = repetition_quantiles(per_run)
        xs, ys, lo, hi = _downsample(grid, mid, lo, hi)
        band = (lo, hi)
        hover += f"<br>median of {len(per_run)} runs"
    shown = np.isfinite(ys) & (ys > 0)
    if shown.any() and not failing and not ys[shown][-1] - ys[shown][0] > 9 * abs(ys[shown][0]):
        view.append((ys[shown].min(), ys[shown].max(), xs[shown].max()))
    y_name = "f − f*" if row["measure"] != "f" else "f"
    group = f"{row.get('sweep', '')}|{row['config_id']}"
    traces = []
    if band is not None:
        common = {
            "type": "scatter",
            "x": _values(xs),
            "mode": "lines",
            "legendgroup": group,
            "showlegend": False,
            "hoverinfo": "skip",
            "meta": "band",
            "line": {"width": 0},
        }
        traces.append({**common, "y": _values(band[0])})
        traces.append({**common, "y": _values(band[1]), "fill": "tonexty", "fillcolor": _transparent(color)})
    traces.append(
        {
            "type": "scatter",
            "x": _values(xs),
            "y": _values(ys),
            "mode": "lines",
            "name": name,
            "meta": "curve",
            "legendgroup": group,
            "line": {"color": color, "width": 1.6, "dash": "dot" if failing else "solid"},
            "hovertemplate": f"{hover}<br>{x} %{{x}}<br>{y_name} %{{y:.4g}}<extra></extra>",
        }
    )
    return traces


def _transparent(color: str, alpha: float = 0.18) -> str:
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _template() -> dict:
    """plotly's ``plotly_white`` template, as plotly ships it (what ``plotly.io.templates`` would load)."""
    return json.loads(_package_file("plotly", "package_data", "templates", "plotly_white.json").read_bytes())


def _layout(objective, x, group, view, compare) -> dict:
    gap = bool(group["f_star"].notna().all()) if "f_star" in group else False
    y_title = "f − f*" if gap else "f"
    yaxis = {"type": "log", "title": {"text": y_title}, "exponentformat": "power"}
    xaxis = {"title": {"text": "evaluations: function + gradient (nfev + ngev)" if x == "evaluations" else x}}
    if view:  # the runs with a result that did not blow up set the view; zoom out (double-click) for the others
        lo, hi = math.log10(min(v[0] for v in view)), math.log10(max(v[1] for v in view))
        pad = max(0.05 * (hi - lo), 0.2)
        yaxis["range"] = [lo - pad, hi + pad]
        xaxis["range"] = [0, 1.03 * max(v[2] for v in view)]
    return {
        "title": {"text": f"{objective}: {y_title} against {x}", "x": 0.01},
        "xaxis": xaxis,
        "yaxis": yaxis,
        "template": _template(),
        "height": 560,
        "margin": {"l": 70, "r": 20, "t": 60, "b": 60},
        "showlegend": True,
        "legend": {"title": {"text": "sweep: config" if compare else "config (best first)"}, "font": {"size": 11}},
        "hovermode": "closest",
        "updatemenus": [
            {
                "type": "buttons",
                "direction": "right",
                "x": 1.0,
                "xanchor": "right",
                "y": 1.02,
                "yanchor": "bottom",
                "buttons": [
                    {"label": "x linear", "method": "relayout", "args": [{"xaxis.type": "linear"}]},
                    {"label": "x log", "method": "relayout", "args": [{"xaxis.type": "log"}]},
                ],
            }
        ],
    }


# ----------------------------------------------------------------------------- figures and failures


def _figures(folders: list[Path], compare: bool) -> list[dict]:
    """The static figures (PNG) of each folder's ``figures/``, as base64 data."""
    names = _short_names([str(folder) for folder in folders])
    found = []
    for folder in folders:
        for png in sorted((folder / FIGURES_DIR).glob("*.png")):
            try:
                data = base64.b64encode(_compact_png(png)).decode("ascii")
            except OSError:
                continue
            found.append({"name": png.stem, "sweep": names[str(folder)] if compare else "", "data": data})
    return found


def _compact_png(path: Path) -> bytes:
    """The PNG's bytes; past :data:`BIG_PNG` bytes, its colours reduced to a 256-colour palette (Pillow, which
    matplotlib needs anyway): the paths figure of a big sweep drops from about 1.2 MB to 0.3 MB."""
    data = path.read_bytes()
    if len(data) <= BIG_PNG:
        return data
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    small.save(out, format="PNG")
    return out.getvalue() if out.tell() < len(data) else data


def _failures(runs: pd.DataFrame) -> list[dict]:
    failed = runs[runs["status"] == "failed"]
    rows = []
    for _, run in failed.head(MAX_FAILURES).iterrows():
        rows.append(
            {
                "job": _cell(run.get("job")),
                "sweep": _cell(run.get("sweep")),
                "error": _cell(run.get("error")) or _cell(run.get("message")),
                "traceback": _cell(run.get("traceback")),
            }
        )
    return rows


# ----------------------------------------------------------------------------- the page


def _html(**page) -> tuple[str, str]:
    """The page's HTML before and after plotly.js (whose 4.6 MB go into the page's bytes as they are).
    Every value from the runs is escaped here; the fragments built as HTML (table, plots, libraries) are not."""
    compare, e = page["compare"], _text
    head = [
        "<!DOCTYPE html>\n<!-- The report page (runner.report): every library and figure is inside it,"
        + " so it opens from",
        ' disk with no network. -->\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        f"<title>{e(page['title'])}</title>\n<style>\n{_CSS}</style>\n{page['datatables']}\n",
        '<script type="text/javascript">',
    ]
    nav = "".join(
        [
            '<a href="#best">best configs</a><a href="#runs-table">runs</a><a href="#curves">curves</a>',
            '<a href="#figures">figures</a>' if page["figures"] else "",
            '<a href="#failures">failures</a>' if page["failures"] else "",
            '<a href="#versions">versions</a>',
        ]
    )
    kind = "Sweeps" if compare else ("Run" if page["single"] else "Sweep")
    body = ["</script>\n</head>\n<body>\n", f"<h1>{e(page['title'])}</h1>\n<nav>{nav}</nav>\n\n"]
    body.append(f'<h2 id="header">{kind}</h2>\n<table class="plain">\n  <tr>')
    body.append(
        ("<th>sweep</th>" if compare else "")
        + "<th>folder</th><th>runs</th><th>by status</th><th>wall time (sum of runs)</th>"
        + "<th>first start to last end</th>"
        + "</tr>\n"
    )
    for h in page["headers"]:
        started = f'<br><span class="note">from {e(h["started"])}</span>' if h["started"] else ""
        body.append(
            "  <tr>\n"
            + (f'    <td class="wrap"><code>{e(h["label"])}</code></td>\n' if compare else "")
            + f'    <td class="wrap"><code>{e(h["folder"])}</code></td>\n'
            + f'    <td class="num">{e(h["runs"])}</td>\n'
            + f"    <td>{_status_spans(h['counts'])}</td>\n"
            + f'    <td class="num">{e(h["wall_total"])}</td>\n'
            + f'    <td class="num">{e(h["wall_span"] or "")}{started}</td>\n  </tr>\n'
        )
    body.append("</table>\n")
    for h in page["headers"]:
        label = f" (<code>{e(h['label'])}</code>)" if compare else ""
        if h["command"]:
            body.append(f'<p><b>Command</b>{label}:</p>\n<pre class="command">{e(h["command"])}</pre>\n')
            if h["swept"]:
                swept = e("\n".join(h["swept"]))
                body.append(f'<p>swept by the config:</p><pre class="command">{swept}</pre>\n')
        else:
            body.append(
                f'<p><b>Command</b>{label}: <span class="note">not recorded (Hydra\'s multirun.yaml or .hydra/ is not '
                "in the folder)</span></p>\n"
            )
    body.append(f"<p><b>Runs by status:</b> {_status_spans(page['counts'])}</p>\n")
    if page["fixed"]:
        body.append(
            "<p><b>Fixed config</b> (one value among the runs that have the key): "
            + f"<code>{e(page['fixed'])}</code></p>\n"
        )
    body.append(
        '\n<h2 id="best">Best configs</h2>\n<p class="note">Per '
        + ("sweep, " if compare else "")
        + "objective and optimizer: ranked by the final f − f* (f where f* is unknown), then by the iterations to the"
        + " stop rule, each the median over seeds; a run that failed, diverged or was interrupted counts as “no result”"
        + f" and ranks last. At most {BEST_ROWS} per group.</p>\n"
        + '<table class="plain" id="best-configs">\n  <tr>'
        + ("<th>sweep</th>" if compare else "")
        + "<th>objective</th><th>optimizer</th><th>rank</th><th>config</th><th>measure</th><th>final (median)</th>"
        + "<th>iterations (median)</th><th>runs</th><th>no result</th><th>best run</th></tr>\n"
    )
    for b in page["best"]:
        b = {key: e(value) for key, value in b.items()}
        body.append(
            f'  <tr data-config="{b["config_id"]}" data-rank="{b["rank"]}">\n'
            + (f"    <td><code>{b['sweep']}</code></td>\n" if compare else "")
            + f'    <td>{b["objective"]}</td><td>{b["optimizer"]}</td><td class="num">{b["rank"]}</td>'
            + f"<td><code>{b['setting']}</code></td>\n"
            + f'    <td>{b["measure"]}</td><td class="num">{b["final"]}</td><td class="num">{b["iterations"]}</td>\n'
            + f'    <td class="num">{b["runs"]}</td><td class="num">{b["no_result"]}</td>'
            + f"<td><code>{b['run_id']}</code></td>\n  </tr>\n"
        )
    body.append("</table>\n\n")
    body.append(
        '<h2 id="runs-table">Runs</h2>\n<p class="note">One row per run. Click a heading to sort (shift-click for a'
        " second column); type in the boxes below the table to filter a column, or in “Search” to filter every column."
        " <code>final</code> is f − f* (f where f* is unknown).</p>\n" + page["table"] + "\n\n"
    )
    body.append(
        '<h2 id="curves">Convergence</h2>\n<p class="note">Hover a curve for its config; click a legend entry to hide'
        " its curve (double-click: show it alone); drag to zoom, double-click to zoom back. Repetitions over seeds are"
        " drawn as their median with a 25–75 % band. Long traces are thinned to at most a few hundred points each, at"
        " their true iteration numbers." + (" Colours follow the sweep." if compare else "") + "</p>\n"
    )
    body += [f'<p class="note" data-role="curve-cap">{e(note)}</p>' for note in page["curve_notes"]]
    body.append("\n" if page["curve_notes"] else "")
    for plot in page["plots"]:
        body.append(
            f'<div class="plot" data-objective="{e(plot["objective"])}" data-x="{e(plot["x"])}"'
            f' data-curves="{e(plot["curves"])}">{plot["html"]}</div>\n'
        )
    if not page["plots"]:
        body.append('<p class="note">No curves: no run has a trace.</p>\n')
    if page["figures"]:
        body.append('\n<h2 id="figures">Figures</h2>\n')
        for fig in page["figures"]:
            sweep = f"<code>{e(fig['sweep'])}</code>: " if fig["sweep"] else ""
            body.append(
                f'<div class="figure"><h3>{sweep}{e(fig["name"])}</h3>\n'
                f'<img alt="{e(fig["name"])}" src="data:image/png;base64,{fig["data"]}"></div>\n'
            )
    if page["failures"]:
        shown, total = len(page["failures"]), page["failures_total"]
        body.append(f'\n<h2 id="failures">Failures ({total})</h2>\n')
        if total > shown:
            body.append(f'<p class="note">The first {shown} of {total}; the runs table holds every one.</p>\n')
        for f in page["failures"]:
            where = f"{e(f['sweep'])}: " if f["sweep"] else ""
            folded = (
                f"  <details><summary>traceback</summary><pre>{e(f['traceback'])}</pre></details>\n"
                if f["traceback"]
                else ""
            )
            body.append(
                f'<div class="failure">\n  <p><code>{where}{e(f["job"])}</code>: {e(f["error"])}</p>\n{folded}</div>\n'
            )
    versions, said = page["versions"]
    body.append(f'\n<h2 id="versions">Versions</h2>\n<p class="note">{e(said)}</p>\n<p>')
    body += [f'<span class="status"><code>{e(name)} {e(version)}</code></span>' for name, version in versions.items()]
    body.append("</p>\n</body>\n</html>\n")
    return "".join(head), "".join(body)


def _text(value) -> str:
    """A value as text inside HTML (an element or a quoted attribute)."""
    return html.escape(str(value), quote=True)


def _status_spans(counts) -> str:
    return "".join(f'<span class="status">{_text(n)} {_text(status)}</span>' for status, n in counts)


_CSS = """  body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em auto; max-width: 1400px;
         padding: 0 1.2em; color: #222; font-size: 14px; }
  h1 { font-size: 1.5em; margin-bottom: 0.2em; }
  h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
  code, pre { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
  pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
  pre.command { white-space: pre-wrap; word-break: break-all; margin: 0.3em 0; padding: 0.3em 0.5em; }
  table.plain td.wrap { word-break: break-all; }
  table.plain { border-collapse: collapse; margin: 0.5em 0; }
  table.plain th, table.plain td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
  table.plain td.num { text-align: right; font-variant-numeric: tabular-nums; }
  table.plain th { background: #f3f3f3; }
  .status { display: inline-block; margin-right: 1em; }
  .note { color: #666; font-style: italic; }
  .figure { margin: 1em 0; }
  .figure img { max-width: 100%; border: 1px solid #eee; }
  details summary { cursor: pointer; }
  nav a { margin-right: 1em; }
  #runs_wrapper { font-size: 12px; }
"""


# ----------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    """``python -m runner.report DIR [DIR ...] [-o OUT]``."""
    parser = argparse.ArgumentParser(
        prog="python -m runner.report",
        description="Write the report page of a sweep or run folder (DIR/report.html), or one page comparing "
        "several sweeps (report.html here, or -o OUT). The page opens offline in any browser.",
    )
    parser.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="a sweep folder or a single run's folder")
    parser.add_argument("-o", "--out", type=Path, default=None, metavar="OUT", help="where to write the page")
    args = parser.parse_args(argv)
    try:
        path = write_report(args.dirs, args.out)
    except NoRuns as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the page could not be written (a read-only folder, a full disk)
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
