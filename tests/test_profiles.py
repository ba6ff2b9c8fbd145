"""The study across problems: best lr, performance and data profiles, runtime ECDFs, and the preset that draws them.

The profiles are checked on a small example computed by hand (3 solvers x 4 problems, the table in
the comments), against their published properties on random cost tables (Dolan & Moré 2002: non-decreasing,
rho_s(1) the fraction where s is best with ties counted for each, rho_s at the largest ratio the fraction
solved), and the best lr against a pandas groupby median written here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import runner
from runner import profiles
from runner.figures import REGISTRY
from runner.figures._data import TRACE_COLUMNS
from tests.helpers import run_module

INF = np.inf
BENCHMARK_FIGURES = ("performance_profile", "data_profile", "runtime_ecdf", "lr_sensitivity")

# ----------------------------------------------------------------------------- the hand-computed example
#
# Solvers A, B, C on problems p1..p4, every run starting at f(x0) = 1. p1..p3 know f* = 0; p4 does not, so
# its f_L is the best f any run found there: A's 0.1 (before A diverges). The test at tau = 1e-3 is
# f <= f_L + 1e-3 (1 - f_L): 1e-3 on p1..p3, 0.1009 on p4. A trace is f = 1 until the iteration given,
# then the value given (a list of (iteration, value) steps); ngev is iteration + 1, but 2 iteration + 1
# for B (two gradients a step).
#
#   run      steps (iteration: f)                 status     iterations to the test   ngev to the test
#   A/p1     10: 1e-4                             max_iter   10                       11
#   B/p1     20: 1e-4                             max_iter   20                       41
#   C/p1     10: 1e-4, 15: 1e-6                   max_iter   10                       11
#   A/p2     5: 1e-4, 6: inf                      diverged   inf (failing: reached, then diverged)
#   B/p2     30: 1e-4                             max_iter   30                       61
#   C/p2     60: 1e-4                             max_iter   60                       61
#   A/p3     40: 1e-4                             max_iter   40                       41
#   B/p3     10: 1e-4                             max_iter   10                       21
#   C/p3     1: 0.5                               max_iter   inf (never below 1e-3)
#   A/p4     3: 0.1, 4: inf                       diverged   inf (failing)
#   B/p4     2: 0.2                               max_iter   inf (0.2 > 0.1009)
#   C/p4     2: 0.3                               max_iter   inf
#
# Performance ratios (iterations / the problem's fewest):
#   p1: A 1, B 2, C 1 (A and C tie: both 1)   p2: A inf, B 1, C 2   p3: A 4, B 1, C inf   p4: all inf
# rho_s(tau) at tau = 1, 2, 4:   A 1/4, 1/4, 2/4   B 2/4, 3/4, 3/4   C 1/4, 2/4, 2/4
# Data profile (ngev), budgets 11, 21, 41, 61:
#   A 1/4, 1/4, 2/4, 2/4   B 0, 1/4, 2/4, 3/4   C 1/4, 1/4, 1/4, 2/4
# Runtime ECDF, targets f - f* <= 1e-1, 1e-3, 1e-5 on p1..p3 (9 pairs a solver), runtime in ngev:
#   A: p1 11, 11, inf; p2 inf x3 (failing); p3 41, 41, inf
#   B: p1 41, 41, inf; p2 61, 61, inf; p3 21, 21, inf
#   C: p1 11, 11, 16 (1e-6 at iteration 15); p2 61, 61, inf; p3 inf x3 (0.5 > 0.1)
# ECDF at budgets 11, 16, 21, 41, 61:
#   A 2/9, 2/9, 2/9, 4/9, 4/9   B 0, 0, 2/9, 4/9, 6/9   C 2/9, 3/9, 3/9, 3/9, 5/9

LENGTH = 61  # iterations 0..60 for every run
STEPS = {
    ("A", "p1"): [(10, 1e-4)],
    ("B", "p1"): [(20, 1e-4)],
    ("C", "p1"): [(10, 1e-4), (15, 1e-6)],
    ("A", "p2"): [(5, 1e-4), (6, INF)],
    ("B", "p2"): [(30, 1e-4)],
    ("C", "p2"): [(60, 1e-4)],
    ("A", "p3"): [(40, 1e-4)],
    ("B", "p3"): [(10, 1e-4)],
    ("C", "p3"): [(1, 0.5)],
    ("A", "p4"): [(3, 0.1), (4, INF)],
    ("B", "p4"): [(2, 0.2)],
    ("C", "p4"): [(2, 0.3)],
}


def hand_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    runs, traces = [], []
    for (solver, problem), steps in STEPS.items():
        f = np.ones(LENGTH)
        for start, value in steps:
            f[start:] = value
        diverged = not np.isfinite(f).all()
        if diverged:  # a diverged run's trace ends at its first non-finite row
            f = f[: int(np.argmax(~np.isfinite(f))) + 1]
        iteration = np.arange(len(f))
        run_id = f"{solver}{problem}"
        ngev = 2 * iteration + 1 if solver == "B" else iteration + 1
        traces.append(pd.DataFrame({"run_id": run_id, "iteration": iteration, "f": f, "ngev": ngev}))
        runs.append(
            {
                "run_id": run_id,
                "optimizer": solver,
                "objective": problem,
                "seed": 0,
                "lr": 1.0,
                "status": "diverged" if diverged else "max_iter",
                "f": f[-1],
                "f_star": np.nan if problem == "p4" else 0.0,
            }
        )
    return pd.concat(traces, ignore_index=True), pd.DataFrame(runs)


def test_the_hand_computed_costs_and_references():
    traces, runs = hand_tables()
    ref = profiles.reference_values(traces, runs).set_index("objective")
    assert ref["source"].to_dict() == {"p1": "f*", "p2": "f*", "p3": "f*", "p4": "best found"}
    assert ref["f_L"].to_dict() == {"p1": 0.0, "p2": 0.0, "p3": 0.0, "p4": 0.1}
    assert (ref["f0"] == 1.0).all()
    cost = profiles.cost_to_target(traces, runs, 1e-3)
    expected = pd.DataFrame(
        {"A": [10, INF, 40, INF], "B": [20, 30, 10, INF], "C": [10, 60, INF, INF]},
        index=["p1/seed=0", "p2/seed=0", "p3/seed=0", "p4/seed=0"],
    )
    np.testing.assert_array_equal(cost.to_numpy(), expected.to_numpy())
    assert list(cost.index) == list(expected.index) and list(cost.columns) == ["A", "B", "C"]


def test_the_hand_computed_performance_profile():
    traces, runs = hand_tables()
    cost = profiles.cost_to_target(traces, runs, 1e-3)
    ratios = profiles.performance_ratios(cost)
    np.testing.assert_array_equal(
        ratios.to_numpy(), [[1, 2, 1], [INF, 1, 2], [4, 1, INF], [INF, INF, INF]]
    )  # fmt: skip
    rho = profiles.performance_profile(cost)
    assert list(rho.index) == [1.0, 2.0, 4.0]  # 1 and every finite ratio
    np.testing.assert_allclose(rho["A"], [1 / 4, 1 / 4, 2 / 4], rtol=0, atol=1e-15)
    np.testing.assert_allclose(rho["B"], [2 / 4, 3 / 4, 3 / 4], rtol=0, atol=1e-15)
    np.testing.assert_allclose(rho["C"], [1 / 4, 2 / 4, 2 / 4], rtol=0, atol=1e-15)
    # Between and past the steps it stays; below 1 nothing counts.
    at = profiles.performance_profile(cost, [0.5, 1.5, 3.9, 1e9])
    np.testing.assert_allclose(at["A"], [0, 1 / 4, 1 / 4, 2 / 4], rtol=0, atol=1e-15)


def test_the_hand_computed_data_profile():
    traces, runs = hand_tables()
    cost = profiles.cost_to_target(traces, runs, 1e-3, cost="ngev")
    np.testing.assert_array_equal(cost.to_numpy(), [[11, 41, 11], [INF, 61, 61], [41, 21, INF], [INF, INF, INF]])
    d = profiles.data_profile(cost)
    assert list(d.index) == [11.0, 21.0, 41.0, 61.0]
    np.testing.assert_allclose(d["A"], [1 / 4, 1 / 4, 2 / 4, 2 / 4], rtol=0, atol=1e-15)
    np.testing.assert_allclose(d["B"], [0, 1 / 4, 2 / 4, 3 / 4], rtol=0, atol=1e-15)
    np.testing.assert_allclose(d["C"], [1 / 4, 1 / 4, 1 / 4, 2 / 4], rtol=0, atol=1e-15)


def test_the_hand_computed_runtime_ecdf():
    traces, runs = hand_tables()
    runtimes = profiles.runtimes_to_targets(traces, runs, targets=(1e-1, 1e-3, 1e-5))
    assert sorted(runtimes["problem"].unique()) == ["p1/seed=0", "p2/seed=0", "p3/seed=0"]  # p4: f* unknown
    got = runtimes.set_index(["optimizer", "problem", "target"])["runtime"]
    assert got[("C", "p1/seed=0", 1e-5)] == 16 and got[("A", "p2/seed=0", 1e-1)] == INF
    ecdf = profiles.runtime_ecdf(runtimes)
    assert list(ecdf.index) == [11.0, 16.0, 21.0, 41.0, 61.0]
    np.testing.assert_allclose(ecdf["A"], np.array([2, 2, 2, 4, 4]) / 9, rtol=0, atol=1e-15)
    np.testing.assert_allclose(ecdf["B"], np.array([0, 0, 2, 4, 6]) / 9, rtol=0, atol=1e-15)
    np.testing.assert_allclose(ecdf["C"], np.array([2, 3, 3, 3, 5]) / 9, rtol=0, atol=1e-15)


def test_a_cost_table_needs_one_run_per_problem_and_solver_and_positive_costs():
    traces, runs = hand_tables()
    twice = pd.concat([runs, runs.iloc[[0]].assign(run_id="again")], ignore_index=True)
    with pytest.raises(ValueError, match="runs: 2 runs of optimizer=A on p1/seed=0: expected one run per"):
        profiles.cost_to_target(traces, twice, 1e-3)
    with pytest.raises(ValueError, match=r"tau=1.5: expected a number in \(0, 1\)"):
        profiles.cost_to_target(traces, runs, 1.5)
    with pytest.raises(ValueError, match=r"cost\['p', 'B'\]=0.0: expected a positive cost or inf"):
        profiles.performance_ratios(pd.DataFrame({"A": [1.0], "B": [0.0]}, index=["p"]))
    with pytest.raises(ValueError, match="expected the columns f_star too"):
        profiles.known_f_star(runs.drop(columns="f_star"))


# ----------------------------------------------------------------------------- published properties


def random_costs(seed: int) -> pd.DataFrame:
    """A cost table with ties (small integers) and failures (inf)."""
    rng = np.random.default_rng(seed)
    n_problems, n_solvers = rng.integers(3, 12), rng.integers(2, 6)
    cost = rng.integers(1, 8, size=(n_problems, n_solvers)).astype(float)
    cost[rng.random(cost.shape) < 0.3] = INF
    return pd.DataFrame(cost, columns=[f"s{j}" for j in range(n_solvers)])


@pytest.mark.parametrize("seed", range(20))
def test_profiles_are_non_decreasing_start_at_the_wins_and_end_at_the_fraction_solved(seed):
    cost = random_costs(seed)
    values = cost.to_numpy()
    n = len(values)
    solved = np.isfinite(values).sum(axis=0) / n
    best = values.min(axis=1, keepdims=True)
    wins = (np.isfinite(values) & (values == best)).sum(axis=0) / n  # ties: every tied solver wins

    rho = profiles.performance_profile(cost)
    assert (np.diff(rho.to_numpy(), axis=0) >= 0).all()
    np.testing.assert_allclose(rho.loc[1.0].to_numpy(), wins, rtol=0, atol=1e-15)
    np.testing.assert_allclose(rho.iloc[-1].to_numpy(), solved, rtol=0, atol=1e-15)

    d = profiles.data_profile(cost)
    assert (np.diff(d.to_numpy(), axis=0) >= 0).all()
    np.testing.assert_allclose(d.iloc[-1].to_numpy(), solved, rtol=0, atol=1e-15)

    runtimes = cost.stack().rename("runtime").reset_index().rename(columns={"level_1": "optimizer"})
    ecdf = profiles.runtime_ecdf(runtimes)
    assert (np.diff(ecdf.to_numpy(), axis=0) >= 0).all()
    np.testing.assert_allclose(ecdf.iloc[-1].to_numpy(), solved, rtol=0, atol=1e-15)


# ----------------------------------------------------------------------------- best lr


def test_the_best_lr_is_the_smallest_median_final_gap_over_the_seeds():
    rng = np.random.default_rng(3)
    rows = []
    for optimizer in ("gd", "adam"):
        for objective, f_star in (("quad", 0.0), ("net", np.nan), ("ls", 2.0)):
            for lr in (1e-3, 1e-2, 1e-1, 1.0):
                for seed in range(5):
                    f = 2.0 + rng.lognormal(0, 2)
                    status = "max_iter"
                    if lr == 1.0 and seed < 3:  # three of five seeds diverge: an infinite median
                        f, status = np.inf, "diverged"
                    rows.append((optimizer, objective, lr, seed, f, status, f_star))
    runs = pd.DataFrame(rows, columns=["optimizer", "objective", "lr", "seed", "f", "status", "f_star"])
    best = profiles.best_lr(runs)

    value = runs["f"] - runs["f_star"].fillna(0.0)
    value[runs["status"] == "diverged"] = np.inf
    medians = value.groupby([runs["optimizer"], runs["objective"], runs["lr"]]).median()
    expected = medians.groupby(level=["optimizer", "objective"]).idxmin().map(lambda key: key[2])
    got = best.set_index(["optimizer", "objective"])["lr"]
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False)
    np.testing.assert_array_equal(
        best.set_index(["optimizer", "objective"])["median"].sort_index(),
        medians.groupby(level=["optimizer", "objective"]).min().sort_index(),
    )
    assert (best["runs"] == 5).all() and (best["failing"] == 0).all()
    chosen = profiles.at_best_lr(runs, best)
    keys = ["optimizer", "objective", "lr"]
    assert len(chosen) == 6 * 5
    assert set(chosen[keys].itertuples(index=False)) == set(best[keys].itertuples(index=False))


def test_best_lr_ties_go_to_the_smaller_lr_and_all_failing_keeps_a_row():
    runs = pd.DataFrame(
        {
            "optimizer": ["gd"] * 4 + ["sgd"] * 2,
            "objective": ["q"] * 6,
            "lr": [0.1, 0.1, 0.01, 0.01, 0.1, 0.01],
            "seed": [0, 1, 0, 1, 0, 0],
            "f": [1.0, 3.0, 2.0, 2.0, np.nan, np.nan],
            "status": ["max_iter"] * 4 + ["failed"] * 2,
            "f_star": [0.0] * 4 + [np.nan] * 2,
        }
    )
    best = profiles.best_lr(runs).set_index("optimizer")
    assert best.loc["gd", "lr"] == 0.01 and best.loc["gd", "median"] == 2.0  # 0.1 and 0.01 both have median 2
    assert best.loc["sgd", "lr"] == 0.01 and best.loc["sgd", "median"] == INF and best.loc["sgd", "failing"] == 1


# ----------------------------------------------------------------------------- the preset, end to end


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory):
    """The preset with a shorter run and grid (two seeds, two lrs, 100 iterations), drawn at its end."""
    root = tmp_path_factory.mktemp("benchmark")
    sweep_dir = root / "sweep"
    done = run_module(
        "runner", "+experiment=optimizer_benchmark", "max_iter=100", "lr=1e-3,0.1", "seed=0,1",
        f"hydra.sweep.dir={sweep_dir}", cwd=root, timeout=600,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # sgd is refused on the objectives without samples: failed runs
    assert "figures: " not in done.stderr, done.stderr
    return sweep_dir


def test_the_preset_runs_every_optimizer_on_every_objective_and_draws_its_four_figures(benchmark):
    runs = runner.load_runs(benchmark)
    assert set(runs["optimizer"]) == {"gd", "momentum", "nesterov", "sgd", "adagrad", "rmsprop", "adam"}
    assert set(runs["objective"]) == {"quartic", "shifted_quadratic", "sin_cos", "least_squares", "two_layer_net"}
    assert len(runs) == 7 * 5 * 2 * 2 and runs.groupby(["optimizer", "objective", "lr"]).size().eq(2).all()
    # The failures are the refused sgd runs on the objectives without samples, and nothing else.
    failed = runs[runs["status"] == "failed"]
    assert set(failed["optimizer"]) == {"sgd"}
    assert set(failed["objective"]) == {"quartic", "shifted_quadratic", "sin_cos"}
    names = {p.name for p in (benchmark / "figures").iterdir()}
    for stem in BENCHMARK_FIGURES:
        assert {f"{stem}.png", f"{stem}.pdf"} <= names


def test_the_preset_profiles_hold_the_published_properties(benchmark):
    runs = runner.load_runs(benchmark)
    traces = runner.load(benchmark, columns=["run_id", "iteration", "f", "ngev"])
    chosen = profiles.at_best_lr(runs)
    assert len(chosen) == 7 * 5 * 2
    for tau in profiles.PROFILE_TAUS:
        cost = profiles.cost_to_target(traces, chosen, tau)
        assert len(cost) == 5 * 2 and list(cost.columns) == sorted(runs["optimizer"].unique())
        solved = np.isfinite(cost.to_numpy()).mean(axis=0)
        rho = profiles.performance_profile(cost)
        assert (np.diff(rho.to_numpy(), axis=0) >= 0).all()
        np.testing.assert_allclose(rho.iloc[-1].to_numpy(), solved, rtol=0, atol=1e-15)
        assert rho.loc[1.0].sum() >= (np.isfinite(cost.to_numpy()).any(axis=1)).mean()  # a solved problem has a best
        assert solved[list(cost.columns).index("sgd")] <= 2 / 5  # refused on 3 of 5 objectives
    runtimes = profiles.runtimes_to_targets(traces, chosen)
    assert {p.split("/")[0] for p in runtimes["problem"]} == {"quartic", "shifted_quadratic", "least_squares"}


def test_the_benchmark_figures_apply_to_a_study_across_problems_only(benchmark, tmp_path):
    runs = runner.load_runs(benchmark)
    traces = runner.load(benchmark, columns=TRACE_COLUMNS)
    for stem in BENCHMARK_FIGURES:
        assert isinstance(REGISTRY[stem].figure(traces, runs), Figure), stem
    # One objective (an lr sweep of several optimizers), or one optimizer on several objectives: not a study.
    for keep in (runs["objective"] == "least_squares", runs["optimizer"] == "adam"):
        sub = runs[keep]
        for stem in BENCHMARK_FIGURES:
            assert REGISTRY[stem].figure(traces[traces["run_id"].isin(sub["run_id"])], sub) is None, stem


def test_the_study_of_runs_without_a_seed_column_takes_each_objective_as_one_problem():
    """The figures' study compares runs that carry no seed: each objective is then one problem."""
    from runner.figures._benchmark import study

    runs = pd.DataFrame(
        {
            "run_id": list("abcd"),
            "status": ["converged"] * 4,
            "objective": ["quartic"] * 4,
            "optimizer": ["gd", "gd", "adam", "adam"],
            "lr": [0.1, 0.01, 0.1, 0.01],
            "f": [1.0, 2.0, 4.0, 3.0],
            "f_star": [0.0] * 4,
        }
    )
    s = study(runs)
    assert s.problem == ("objective",)
    assert dict(zip(s.best["optimizer"], s.best["lr"], strict=True)) == {"gd": 0.1, "adam": 0.01}
