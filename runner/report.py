"""A sweep's (or a run's) report: one HTML page that opens from disk, with no network.

``python -m runner.report DIR`` writes ``DIR/report.html`` for a sweep folder or a single run's
folder; ``python -m runner.report DIR_A DIR_B [...]`` writes one page that compares the sweeps
(``report.html`` in the current folder, or ``-o OUT``), with a ``sweep`` column and curves coloured
by sweep. After every sweep (and every single run) :class:`runner.app.SweepEnd` writes it, after
the figures, which it embeds.

The page holds a header (the command, the fixed config, runs by status, wall time, versions), the
best configs (:func:`runner.best.best_configs`), every run as a table to sort and filter
(DataTables, through itables), the convergence curves (plotly), the static figures of
``figures/`` and the failures with their tracebacks. Everything it needs is inside the file:
plotly.js once, DataTables once, the figures as base64 PNG. A big sweep stays small: at most
:data:`MAX_CURVES` curves a plot (the best configs; the page says so) and at most about
:data:`MAX_POINTS` points a curve (the iteration numbers are the true ones).
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import math
import shlex
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from runner.best import NO_RESULT, best_configs, fixed_settings, run_scores, setting_keys
from runner.store import (
    FIGURES_DIR,
    MULTIRUN_FILE,
    REPORT_FILE,
    SUMMARY_FILE,
    job_summaries,
    package_versions,
    read_hydra_record,
    read_summary,
)
from runner.store import write_text as write_page
from runner.tables import load, load_runs, sweeps
from runner.trace import STATUSES

MAX_CURVES = 60  # curves a plot draws: the best configs (by runner.best's rank), evenly shared by the sweeps
MAX_POINTS = 400  # points a curve keeps at most: half evenly spaced in iteration, half geometrically (the early drop)
MAX_FAILURES = 50  # failures listed with their tracebacks; the table holds every run
BIG_PNG = 400_000  # bytes of a figure embedded as it is; a bigger one gets a palette (_compact_png)
BEST_ROWS = 10  # configs per objective and optimizer in the best-configs table
TRACE_COLUMNS = ["run_id", "iteration", "f", "nfev", "ngev", "sweep"]
# The runs table's columns left out of the page's table: long text shown elsewhere, or the same for every run.
_HIDDEN = ("config", "traceback", "config_hash", "trace.x", "started_at")
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")


class NoRuns(ValueError):
    """A folder without runs, or one that is not there: one line, and nothing is written."""


def write_report(folders, out: str | Path | None = None) -> Path:
    """Write the page of ``folders`` (a folder, or a list of them) and return its path.

    One folder: ``out`` defaults to ``<folder>/report.html``; several: one comparison page, default
    ``report.html`` in the current folder. The page is built whole before it is written (atomically).
    """
    given = [Path(folders)] if isinstance(folders, (str, Path)) else [Path(f) for f in folders]
    if not given:
        raise NoRuns("DIR: expected at least one sweep or run folder")
    for folder in given:
        if not folder.is_dir():
            raise NoRuns(f"DIR={folder}: expected an existing sweep or run folder")
    target = Path(out) if out is not None else (given[0] / REPORT_FILE if len(given) == 1 else Path(REPORT_FILE))
    page = render(given)
    write_page(target, page)
    return target


def render(folders: list[Path]) -> str:
    """The page of ``folders`` as HTML text."""
    import jinja2

    source = folders[0] if len(folders) == 1 else [str(f) for f in folders]
    try:
        runs = load_runs(source)
        traces = load(source, columns=TRACE_COLUMNS)
    except FileNotFoundError as err:
        raise NoRuns(str(err).removeprefix("path=")) from None
    if runs.empty:
        raise NoRuns(f"DIR={', '.join(map(str, folders))}: no runs there")
    compare = "sweep" in runs.columns
    names = _short_names(runs["sweep"].unique()) if compare else {}
    if compare:
        runs = runs.assign(sweep=runs["sweep"].map(names))
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("runner", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    best = best_configs(runs)
    plots, notes = curves_html(runs, traces, compare, best)
    return env.get_template("report.html.j2").render(
        title=_title(folders, runs),
        compare=compare,
        single=len(runs) == 1 and not (folders[0] / MULTIRUN_FILE).is_file(),
        headers=[_header(label, folder, part) for label, folder, part in _parts(source, runs, names)],
        fixed=fixed_settings(runs),
        counts=_counts(runs),
        best=_best_rows(best),
        best_rows=BEST_ROWS,
        table=_runs_table(runs, compare),
        datatables=_datatables_library(),
        plotlyjs=_plotly_library(),
        plots=plots,
        curve_notes=notes,
        figures=_figures(folders, compare),
        failures=_failures(runs),
        failures_total=int((runs["status"] == "failed").sum()),
        max_failures=MAX_FAILURES,
        versions=_versions(folders),
    )


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
        row["final"] = _number(row["final"])
        row["iterations"] = _number(row["iterations"], integer=True)
        rows.append(row)
    return rows


def _number(value, integer: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if not math.isfinite(value):
        return "no result"
    return f"{int(value)}" if integer and value == int(value) else f"{value:.4g}"


def table_frame(runs: pd.DataFrame, compare: bool) -> pd.DataFrame:
    """The runs as the page's table shows them: identity, status, the swept keys, the outcome, the rest.

    One row per run. ``final`` is what the best-configs table ranks by (f - f*, or f)."""
    keys = setting_keys(runs.drop(columns=["sweep"], errors="ignore"))
    scores = run_scores(runs)
    front = [*(["sweep"] if compare else []), "job", "status", "stop_reason", *keys]
    table = runs[[c for c in front if c in runs.columns]].copy()
    table["final"] = runs["f_gap"].where(scores["gap"], runs["f"]) if "f_gap" in runs else runs["f"]
    rest = [c for c in runs.columns if c not in front and c not in _HIDDEN and c not in ("f_gap",)]
    for column in ["f", "f_gap", *[c for c in rest if c != "f"]]:
        if column in runs.columns and column not in table.columns:
            table[column] = runs[column]
    for column in table.columns:  # list cells (objective.x0) and nulls as text a table shows
        if table[column].dtype == object:
            table[column] = table[column].map(_cell)
    return table.reset_index(drop=True)


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (list, tuple, np.ndarray)):
        return "[" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) + "]"
    return str(value)


def _runs_table(runs: pd.DataFrame, compare: bool) -> str:
    from itables import to_html_datatable

    frame = table_frame(runs, compare)
    return to_html_datatable(
        frame,
        table_id="runs",
        connected=False,
        pageLength=25,
        lengthMenu=[10, 25, 100, 1000, -1],
        column_filters="footer",
        footer=True,
        classes="display compact nowrap cell-border",
        maxBytes=0,  # every run, never a sample of them
        showIndex=False,
        scrollX=True,
        layout={"topStart": "pageLength", "topEnd": "search", "bottomStart": "info", "bottomEnd": "paging"},
    )


def _datatables_library() -> str:
    """DataTables (itables' offline bundle) inside the page: its CSS as a style, its module imported from a
    ``data:`` URL (itables' own offline mode imports it from a ``blob:`` one), announced as itables expects."""
    from itables import options
    from itables.javascript import _itables_ready_event, _itables_underscore_version

    bundle = Path(options.dt_bundle)
    css = bundle.with_suffix(".css").read_text(encoding="utf-8")
    module = base64.b64encode(bundle.read_bytes()).decode("ascii")
    name, ready = _itables_underscore_version(), _itables_ready_event()
    return (
        f"<style>{css}</style>\n<script>\nwindow.{name} = import('data:text/javascript;base64,{module}');\n"
        f"window.{name}.then(() => window.dispatchEvent(new Event('{ready}')));\n</script>"
    )


def _plotly_library() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


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


def curves_html(
    runs: pd.DataFrame, traces: pd.DataFrame, compare: bool, best: pd.DataFrame
) -> tuple[list[dict], list[str]]:
    """One plotly chart per objective (and x: iteration, and evaluations where they differ) as HTML
    divs, and notes on what is left out. ``best``: :func:`runner.best.best_configs` of ``runs``."""
    import plotly.io

    notes = []
    if traces.empty or "run_id" not in traces.columns:
        return [], []
    by_run = {rid: rows.sort_values("iteration", kind="stable") for rid, rows in traces.groupby("run_id", sort=False)}
    traced = runs[runs["run_id"].isin(by_run)]
    plots = []
    for objective, group in traced.groupby("objective", sort=True):
        configs = best[(best["objective"] == objective) & best["config_id"].isin(group["config_id"])]
        chosen, note = _chosen(configs, compare)
        if note:
            notes.append(f"{objective}: {note}")
        rows = traces[traces["run_id"].isin(group["run_id"])]
        for x in ["iteration"] + (["evaluations"] if _evaluations_differ(rows) else []):
            data, view = [], []
            for color, row in chosen:
                members = group[group["config_id"] == row["config_id"]]
                if compare:
                    members = members[members["sweep"] == row["sweep"]]
                data += _config_traces(members, by_run, row, color, x, compare, view)
            figure = {"data": data, "layout": _layout(objective, x, group, view, compare)}
            div = plotly.io.to_html(
                figure,
                full_html=False,
                include_plotlyjs=False,
                validate=False,  # the dicts are plotly's schema as written here; validating 60 traces takes seconds
                div_id=f"curves-{len(plots)}",
                config={"displaylogo": False, "responsive": True},
            )
            plots.append({"objective": objective, "x": x, "html": div, "curves": len(chosen)})
    return plots, notes


def _chosen(configs: pd.DataFrame, compare: bool) -> tuple[list[tuple[str, dict]], str]:
    """The configs drawn, each with its colour: the best :data:`MAX_CURVES`, shared evenly by the sweeps."""
    rows = configs.to_dict("records")
    if compare:
        labels = list(dict.fromkeys(r["sweep"] for r in rows))
        each = max(MAX_CURVES // max(len(labels), 1), 1)
        colors = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}
        by_sweep = {label: [r for r in rows if r["sweep"] == label] for label in labels}
        chosen = [(colors[label], r) for label in labels for r in by_sweep[label][:each]]
        shown = f"the {each} best configs of each sweep" if any(len(v) > each for v in by_sweep.values()) else ""
    else:
        picked = sorted(rows, key=lambda r: (r["rank"], r["optimizer"]))[:MAX_CURVES]
        chosen = [(PALETTE[i % len(PALETTE)], r) for i, r in enumerate(picked)]
        shown = f"the {len(picked)} best" if len(rows) > MAX_CURVES else ""
    note = f"showing {shown} of {len(rows)} configs (ranked as in the best-configs table); the table holds every run"
    return chosen, note if shown else ""


def _evaluations_differ(traces: pd.DataFrame) -> bool:
    """Whether evaluations (nfev + ngev) tell more than iterations: some row's nfev or ngev is not iteration + 1."""
    if "nfev" not in traces.columns or "ngev" not in traces.columns:
        return False
    one_each = (traces["nfev"] == traces["iteration"] + 1) & (traces["ngev"] == traces["iteration"] + 1)
    return not bool(one_each.all())


def _series(rows: pd.DataFrame, f_star, x: str) -> tuple[np.ndarray, np.ndarray]:
    """A run's (x, f - f*), f where its f* is unknown."""
    xs = rows["nfev"] + rows["ngev"] if x == "evaluations" else rows["iteration"]
    y = rows["f"].to_numpy(dtype=float)
    f_star = pd.to_numeric(pd.Series([f_star]), errors="coerce").iloc[0]
    if pd.notna(f_star) and math.isfinite(f_star):
        y = y - f_star
    return xs.to_numpy(dtype=float), y


def _values(a: np.ndarray) -> list:
    """Numbers for the page: 6 significant digits, null where not finite (a gap in the curve)."""
    return [float(f"{v:.6g}") if math.isfinite(v) else None for v in a.tolist()]


def _config_traces(members, by_run, row, color, x, compare, view) -> list[dict]:
    """The config's curve: its run, or the median of its repetitions with a 25-75 % band; ``view`` gets its
    (lowest y, highest y, last x) when it is a result that did not blow up, the runs that set the view."""
    ids = [rid for rid in members["run_id"] if rid in by_run]
    stars = members["f_star"] if "f_star" in members else [None] * len(members)
    f_star = dict(zip(members["run_id"], stars, strict=True))
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
    import plotly.io

    return plotly.io.templates["plotly_white"].to_plotly_json()


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
