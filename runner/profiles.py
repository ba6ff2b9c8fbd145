"""Comparisons across problems, from the tables alone: best lr, performance and data profiles, runtime ECDFs.

Plain functions on pandas DataFrames shaped like ``runs.parquet`` (one row per run: ``run_id``,
``status``, ``objective``, ``optimizer``, ``lr``, ``seed``, ``f``, ``f_star``) and ``traces.parquet``
(one row per iterate: ``run_id``, ``iteration``, ``f``, ``ngev``), so that they work as well on
tables an analyst built or filtered by hand as on ``runner.load_runs(DIR)`` and ``runner.load(DIR)``.

The words used throughout:

* a **solver** is a value of the ``solver`` column (default ``optimizer``), a **problem** a
  combination of the ``problem`` columns (default ``objective`` and ``seed``: a seed draws the
  data, x0 and the minibatches, so each seed is one instance of its objective);
* a run is **failing** when its status is ``failed``, ``diverged`` or ``interrupted``, or its final f
  is not finite. A failing run reaches no target, whatever its trace held before it failed: its
  cost is ``inf``, and so is its performance ratio. A problem a solver has no run on counts the same;
* a **cost** matrix has one row per problem and one column per solver, holding what the solver
  spent to pass the problem's convergence test (``inf``: never passed, or failing).

References: E. D. Dolan and J. J. Moré, "Benchmarking optimization software with performance
profiles", Math. Program. 91 (2002); J. J. Moré and S. M. Wild, "Benchmarking derivative-free
optimization algorithms", SIAM J. Optim. 20 (2009); N. Hansen et al., "COCO: a platform for
comparing continuous optimizers in a black-box setting", Optim. Methods Softw. 36 (2021).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

FAILING = ("failed", "diverged", "interrupted")
# COCO's targets: f - f* <= 1e-1, ..., 1e-8.
ECDF_TARGETS = tuple(10.0**-k for k in range(1, 9))
# The convergence tests f(x) <= f_L + tau (f(x0) - f_L) the figures draw (Moré & Wild's 1e-3 and a tight one).
PROFILE_TAUS = (1e-3, 1e-6)
PROBLEM = ("objective", "seed")


def _keys(keys) -> list[str]:
    return [keys] if isinstance(keys, str) else list(keys)


def _need(table: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what}.columns={list(table.columns)}: expected the columns {', '.join(missing)} too")


def failing(runs: pd.DataFrame) -> pd.Series:
    """Which runs are failing: status ``failed``, ``diverged`` or ``interrupted``, or a final f that is
    not finite (null, nan, inf)."""
    _need(runs, ["status", "f"], "runs")
    f = pd.to_numeric(runs["f"], errors="coerce").to_numpy(float)
    return runs["status"].isin(FAILING) | ~pd.Series(np.isfinite(f), index=runs.index)


def known_f_star(runs: pd.DataFrame, problem=PROBLEM) -> pd.Series:
    """Each run's problem's f*: the ``f_star`` any run of the problem recorded (a run that failed before
    its objective was built records none), NaN where no run of the problem knows it."""
    keys = _keys(problem)
    _need(runs, [*keys, "f_star"], "runs")
    f_star = pd.to_numeric(runs["f_star"], errors="coerce")
    return f_star.groupby([runs[k] for k in keys], dropna=False).transform("max")


def final_value(runs: pd.DataFrame, problem=PROBLEM) -> pd.Series:
    """Each run's final f - f* where its problem's f* is known (:func:`known_f_star`), else its final f;
    ``+inf`` for a failing run (:func:`failing`)."""
    f = pd.to_numeric(runs["f"], errors="coerce")
    value = f - known_f_star(runs, problem).fillna(0.0)
    return value.where(~failing(runs), np.inf).astype(float)


def best_lr(runs: pd.DataFrame, by=("optimizer", "objective"), lr: str = "lr", problem=PROBLEM) -> pd.DataFrame:
    """Each group's best learning rate, chosen fairly (as DeepOBS does): one row per combination of ``by``.

    The rule: for each lr, the median over its runs (the seeds) of :func:`final_value`, the final
    f - f* (f where f* is unknown), a failing run counting as ``+inf`` (so an lr where half the seeds
    or more fail has an infinite median); the lr with the smallest median wins, a tie going to the
    smaller lr. A group where every lr's median is infinite (e.g. every run refused) still gets its
    smallest lr, with ``median`` ``inf``.

    Columns: the ``by`` keys, ``lr``, ``median`` (the winner's median final value), ``runs`` (how many
    runs it has) and ``failing`` (how many of them fail).
    """
    by = _keys(by)
    _need(runs, [*by, lr], "runs")
    table = runs[[*by, lr]].copy()
    table["_value"] = final_value(runs, problem).to_numpy()
    table["_failing"] = failing(runs).to_numpy()
    per_lr = (
        table.groupby([*by, lr], dropna=False)
        .agg(median=("_value", "median"), runs=("_value", "size"), failing=("_failing", "sum"))
        .reset_index()
    )
    # Smallest median first, then smallest lr: the first row of each group is its winner.
    per_lr = per_lr.sort_values(["median", lr], kind="stable")
    best = per_lr.groupby(by, dropna=False, sort=True).head(1)
    best = best.sort_values(by, kind="stable").reset_index(drop=True)
    best["failing"] = best["failing"].astype(int)
    return best[[*by, lr, "median", "runs", "failing"]]


def at_best_lr(runs: pd.DataFrame, best: pd.DataFrame | None = None, by=("optimizer", "objective"), lr: str = "lr"):
    """The runs at their group's best lr (:func:`best_lr`, or the ``best`` table given): every seed of it."""
    best = best_lr(runs, by, lr) if best is None else best
    by = _keys(by)
    keys = [*by, lr]
    chosen = best[keys].drop_duplicates()
    return runs.merge(chosen, on=keys, how="inner")


def reference_values(traces: pd.DataFrame, runs: pd.DataFrame, problem=PROBLEM) -> pd.DataFrame:
    """Each problem's ``f_L`` and ``f0``, for the convergence test of the profiles; one row per problem.

    ``f_L`` is the problem's f* where it is known (``source`` ``"f*"``), else the smallest finite f that
    any run of ``runs`` on the problem reached at any recorded iterate (``source`` ``"best found"``:
    Moré & Wild's f_L, so it depends on the solvers compared). ``f0`` is f at the start (iteration 0)
    of the problem's runs (they share their start; the largest is taken if they do not).
    """
    keys = _keys(problem)
    _need(runs, ["run_id", *keys], "runs")
    _need(traces, ["run_id", "iteration", "f"], "traces")
    rows = traces[["run_id", "iteration", "f"]].merge(runs[["run_id", *keys]], on="run_id", how="inner")
    rows = rows[np.isfinite(rows["f"].to_numpy(float))]
    group = rows.groupby(keys, dropna=False)
    best = group["f"].min()
    f0 = rows[rows["iteration"] == 0].groupby(keys, dropna=False)["f"].max()
    f_star = runs.assign(_f_star=known_f_star(runs, keys)).groupby(keys, dropna=False)["_f_star"].max()
    table = pd.DataFrame({"best": best, "f0": f0}).join(f_star.rename("f_star"), how="outer")
    known = table["f_star"].notna()
    table["f_L"] = table["f_star"].where(known, table["best"])
    table["source"] = np.where(known, "f*", "best found")
    return table[["f_L", "source", "f0"]].reset_index()


def first_reach(traces: pd.DataFrame, thresholds: pd.Series, cost: str = "iteration") -> pd.Series:
    """Each run's ``cost`` (a trace column: ``iteration``, ``ngev``, ``nfev``) at its first row whose f is
    at or below the run's threshold (``thresholds``, indexed by ``run_id``); ``inf`` where no row is.
    Indexed by the ``run_id`` of ``thresholds``."""
    _need(traces, ["run_id", "f", cost], "traces")
    rows = traces[["run_id", "f", cost]]
    rows = rows[rows["run_id"].isin(thresholds.index)]
    limit = rows["run_id"].map(thresholds).to_numpy(float)
    hit = rows[rows["f"].to_numpy(float) <= limit]
    reached = hit.groupby("run_id")[cost].min().astype(float)
    return reached.reindex(thresholds.index, fill_value=np.inf).astype(float)


def _one_run_each(runs: pd.DataFrame, solver: str, keys: list[str]) -> None:
    counts = runs.groupby([*keys, solver], dropna=False).size().rename("runs").reset_index()
    many = counts[counts["runs"] > 1]
    if len(many):
        cell = many.iloc[0]
        raise ValueError(
            f"runs: {cell['runs']} runs of {solver}={cell[solver]} on {_label(many, keys).iloc[0]}: expected one run "
            "per (problem, solver); select them first (at_best_lr: one lr per optimizer and objective)"
        )


def _label(frame: pd.DataFrame, keys: list[str]) -> pd.Series:
    """A problem's label, ``quartic/seed=0``: its first key's value, then the others as key=value."""
    parts = frame[keys[0]].astype(str)
    for key in keys[1:]:
        parts = parts + f"/{key}=" + frame[key].astype(str)
    return parts


def cost_to_target(
    traces: pd.DataFrame,
    runs: pd.DataFrame,
    tau: float,
    cost: str = "iteration",
    solver: str = "optimizer",
    problem=PROBLEM,
) -> pd.DataFrame:
    """The cost matrix (problems x solvers) of Moré & Wild's convergence test
    f(x) <= f_L + tau (f(x0) - f_L), with f_L and f0 from :func:`reference_values` (f* where known,
    else the best f any of ``runs`` found on the problem).

    ``runs`` holds one run per (problem, solver) (e.g. :func:`at_best_lr`); a cell is the ``cost``
    column (``iteration``: iterations; ``ngev``: gradient evaluations so far) at the run's first
    iterate that passes the test, ``inf`` where none does, where the run is failing, or where the
    solver has no run on the problem. A problem whose start already passes (f0 <= f_L: no run
    improved on it) has nothing to compare and is left out. The index is the problem's label
    (``quartic/seed=0``), the columns the solvers, sorted.
    """
    if not 0 < tau < 1:
        raise ValueError(f"tau={tau}: expected a number in (0, 1)")
    keys = _keys(problem)
    _need(runs, ["run_id", solver, *keys], "runs")
    _one_run_each(runs, solver, keys)
    ref = reference_values(traces, runs, keys)
    ref = ref[ref["f0"] > ref["f_L"]]
    table = runs[["run_id", solver, *keys]].merge(ref, on=keys, how="inner")
    thresholds = pd.Series(
        (table["f_L"] + tau * (table["f0"] - table["f_L"])).to_numpy(float), index=table["run_id"].to_numpy()
    )
    reached = first_reach(traces, thresholds, cost)
    bad = set(runs.loc[failing(runs), "run_id"])
    table["cost"] = [np.inf if rid in bad else reached[rid] for rid in table["run_id"]]
    table["problem"] = _label(table, keys)
    matrix = table.pivot(index="problem", columns=solver, values="cost")
    solvers = sorted(runs[solver].dropna().unique(), key=str)
    matrix = matrix.reindex(columns=solvers).fillna(np.inf)
    matrix.columns.name = solver
    return matrix.sort_index().astype(float)


def performance_ratios(cost: pd.DataFrame) -> pd.DataFrame:
    """Dolan & Moré's performance ratios r_ps = t_ps / min_s t_ps of a cost matrix (problems x solvers).

    Every solver whose cost equals the problem's smallest gets ratio 1 (ties count for each tied
    solver). ``inf`` (or NaN) cost, failing or not reached, gives ratio ``inf``; on a problem no solver
    passes, every ratio is ``inf``. Costs must be positive.
    """
    values = cost.to_numpy(float, copy=True)
    values[np.isnan(values)] = np.inf
    if (values <= 0).any():
        i, j = np.argwhere(values <= 0)[0]
        raise ValueError(
            f"cost[{cost.index[i]!r}, {cost.columns[j]!r}]={values[i, j]}: expected a positive cost or inf"
        )
    best = values.min(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        ratios = np.where(np.isfinite(values), values / best, np.inf)
    return pd.DataFrame(ratios, index=cost.index, columns=cost.columns)


def performance_profile(cost: pd.DataFrame, taus: Sequence[float] | None = None) -> pd.DataFrame:
    """Dolan & Moré's performance profile: rho_s(tau) = |{p : r_ps <= tau}| / n_p, the fraction of the
    problems on which solver s is within a factor tau of the best solver (:func:`performance_ratios`).

    ``rho_s(1)`` is the fraction of problems where s is the best, ties counted for every tied solver;
    ``rho_s`` is non-decreasing in tau and, past the largest finite ratio, equals the fraction of
    problems s solves (failing and not reached never count). ``taus`` defaults to 1 and every finite
    ratio, the profile's steps. Returns one row per tau (index ``tau``), one column per solver.
    """
    ratios = performance_ratios(cost).to_numpy(float)
    if taus is None:
        finite = ratios[np.isfinite(ratios)]
        taus = np.unique(np.concatenate([[1.0], finite]))
    taus = np.asarray(taus, float)
    n = max(len(cost), 1)
    rho = (ratios[None, :, :] <= taus[:, None, None]).sum(axis=1) / n
    return pd.DataFrame(rho, index=pd.Index(taus, name="tau"), columns=cost.columns)


def data_profile(cost: pd.DataFrame, budgets: Sequence[float] | None = None) -> pd.DataFrame:
    """Moré & Wild's data profile: d_s(b) = |{p : t_ps <= b}| / n_p, the fraction of the problems solver
    s passes the convergence test on within a budget b, in the unit of the cost matrix.

    Moré & Wild count function evaluations divided by n_p + 1 (simplex gradients), for derivative-free
    solvers; for gradient methods the unit here is one gradient evaluation (``cost="ngev"`` in
    :func:`cost_to_target`), not scaled by the dimension. ``inf`` (failing, not reached) is never within
    a budget; d_s is non-decreasing and ends at the fraction of problems s solves. ``budgets``
    defaults to every finite cost, the profile's steps. One row per budget (index ``budget``).
    """
    values = cost.to_numpy(float, copy=True)
    values[np.isnan(values)] = np.inf
    if budgets is None:
        budgets = np.unique(values[np.isfinite(values)])
    budgets = np.asarray(budgets, float)
    n = max(len(cost), 1)
    d = (values[None, :, :] <= budgets[:, None, None]).sum(axis=1) / n
    return pd.DataFrame(d, index=pd.Index(budgets, name="budget"), columns=cost.columns)


def runtimes_to_targets(
    traces: pd.DataFrame,
    runs: pd.DataFrame,
    targets: Sequence[float] = ECDF_TARGETS,
    cost: str = "ngev",
    solver: str = "optimizer",
    problem=PROBLEM,
) -> pd.DataFrame:
    """COCO's runtimes: for each (problem, target, solver) the ``cost`` (default gradient evaluations
    so far, ``ngev``) at the solver's first iterate with f - f* <= target, on the problems whose f*
    is known (:func:`known_f_star`; the others are left out). ``inf``: not reached, failing, or no run.

    ``runs`` holds one run per (problem, solver). Long format: columns ``problem`` (label),
    ``target``, the ``solver`` column, ``runtime``.
    """
    keys = _keys(problem)
    _need(runs, ["run_id", solver, *keys], "runs")
    _one_run_each(runs, solver, keys)
    table = runs[["run_id", solver, *keys]].assign(f_star=known_f_star(runs, keys).to_numpy())
    table = table[table["f_star"].notna()]
    table["problem"] = _label(table, keys)
    bad = set(runs.loc[failing(runs), "run_id"])
    solvers = sorted(runs[solver].dropna().unique(), key=str)
    problems = sorted(table["problem"].unique())
    frames = []
    for target in targets:
        thresholds = pd.Series((table["f_star"] + target).to_numpy(float), index=table["run_id"].to_numpy())
        reached = first_reach(traces, thresholds, cost)
        runtime = [np.inf if rid in bad else reached[rid] for rid in table["run_id"]]
        frame = table[["problem", solver]].assign(target=float(target), runtime=runtime)
        full = pd.MultiIndex.from_product([problems, solvers], names=["problem", solver])
        frame = frame.set_index(["problem", solver]).reindex(full)
        frame["target"] = float(target)
        frames.append(frame.fillna({"runtime": np.inf}).reset_index())
    columns = ["problem", "target", solver, "runtime"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def runtime_ecdf(
    runtimes: pd.DataFrame, budgets: Sequence[float] | None = None, solver: str = "optimizer"
) -> pd.DataFrame:
    """COCO's empirical cumulative distribution of runtime: for each solver and budget b, the fraction
    of its (problem, target) pairs (:func:`runtimes_to_targets`) reached within b. Non-decreasing in b;
    it ends at the fraction of pairs ever reached (failing and not reached never count).
    ``budgets`` defaults to every finite runtime. One row per budget (index ``budget``), one column per solver.
    """
    _need(runtimes, [solver, "runtime"], "runtimes")
    values = runtimes["runtime"].to_numpy(float)
    if budgets is None:
        budgets = np.unique(values[np.isfinite(values)])
    budgets = np.asarray(budgets, float)
    columns = {}
    for name, rows in runtimes.groupby(solver, sort=True):
        r = rows["runtime"].to_numpy(float)
        columns[name] = (r[None, :] <= budgets[:, None]).sum(axis=1) / max(len(r), 1)
    return pd.DataFrame(columns, index=pd.Index(budgets, name="budget"))
