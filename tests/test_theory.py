"""Theory beside the measurement (runner.theory): Hessians, rates, optimal hyperparameters, the columns.

The references are not the theory's own formulas: finite differences of the analytic gradient for
the Hessians, the spectral radius of an iteration matrix built by applying the runner's own
optimizer ``update`` to basis vectors of its state, the runner's runs (their measured rates and
iteration counts), and the tables as pyarrow reads them.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from objectives import REGISTRY as OBJECTIVES
from objectives import least_squares, shifted_quadratic, sin_cos
from runner import theory
from runner.batched import minimize_batch
from runner.config import build_optimizer
from runner.optimizers import OPTIMIZERS, SGDState
from tests.helpers import run_module

QUADRATICS = {
    "shifted_quadratic": lambda: shifted_quadratic(a=-1.0, b=4.0),
    "least_squares": lambda: least_squares(m=30, n=6, seed=3),
}

# Hyperparameters on both sides of the stability limits, with and without dampening and weight decay.
CASES = [
    ("gd", {"lr": 0.3}),
    ("gd", {"lr": 1.9, "weight_decay": 0.05}),
    ("momentum", {"lr": 0.2, "momentum": 0.5}),
    ("momentum", {"lr": 1.1, "momentum": 0.9}),
    ("momentum", {"lr": 0.7, "momentum": 0.3, "dampening": 0.4, "weight_decay": 0.1}),
    ("momentum", {"lr": 3.0, "momentum": 0.2}),
    ("nesterov", {"lr": 0.4, "momentum": 0.8}),
    ("nesterov", {"lr": 1.3, "momentum": 0.6, "weight_decay": 0.02}),
    ("nesterov", {"lr": 2.5, "momentum": 0.4}),
]


def scaled(objective, hyper: dict) -> dict:
    """``hyper`` with lr in units of 1/L, so that one list of cases fits both objectives' curvatures."""
    return {**hyper, "lr": hyper["lr"] / objective.hessian_max_eig}


# ----------------------------------------------------------------------------- the Hessians


@pytest.mark.parametrize("name", sorted(QUADRATICS))
def test_the_hessian_is_the_gradients_finite_differences(name):
    objective = QUADRATICS[name]()
    rng = np.random.default_rng(0)
    x = objective.x_star + rng.standard_normal(objective.dim)
    h = 1e-5
    eye = np.eye(objective.dim) * h
    columns = (objective.grad(x + eye) - objective.grad(x - eye)) / (2 * h)  # row i: d grad / d x_i
    hessian = np.asarray(objective.hessian)
    np.testing.assert_allclose(columns, hessian, rtol=1e-6, atol=1e-6 * np.abs(hessian).max())
    np.testing.assert_allclose(objective.hessian_eigenvalues, np.linalg.eigvalsh(columns), rtol=1e-6)
    assert objective.hessian_max_eig == pytest.approx(np.max(objective.hessian_eigenvalues), rel=1e-12)
    # f is exactly the quadratic of its Hessian: f(x) = f* + (x - x*)^T H (x - x*) / 2
    e = x - objective.x_star
    assert float(objective.value(x)) == pytest.approx(objective.f_star + e @ hessian @ e / 2, rel=1e-10)


def test_objectives_without_a_known_hessian_say_so():
    for factory in OBJECTIVES.values():
        objective = factory()
        known = objective.hessian_eigenvalues is not None
        assert known == (objective.hessian is not None) == (objective.name in QUADRATICS)


# ----------------------------------------------------------------------------- the rate


def iteration_matrix(objective, name: str, hyper: dict) -> np.ndarray:
    """The linear map of the runner's own update on the state (x - x*, momentum buffer), column by column:
    one ``update`` step applied to each basis vector of the state, minus the step from the zero state
    (weight decay makes the map affine about x*)."""
    optimizer = OPTIMIZERS[name](**hyper)
    n = objective.dim
    x_star = objective.x_star
    _, state = optimizer.update(objective.grad(x_star + 1.0), optimizer.init(x_star + 1.0), x_star + 1.0)
    has_buffer = isinstance(state, SGDState) and state.momentum_buffer is not None
    size = 2 * n if has_buffer else n

    def step(s):
        x = x_star + s[:n]
        state = SGDState(s[n:].copy()) if has_buffer else optimizer.init(x)
        new_x, new_state = optimizer.update(objective.grad(x), state, x)
        return np.concatenate([new_x - x_star, new_state.momentum_buffer if has_buffer else []])

    zero = step(np.zeros(size))
    return np.stack([step(e) - zero for e in np.eye(size)], axis=1)


@pytest.mark.parametrize("objective_name", sorted(QUADRATICS))
@pytest.mark.parametrize(("name", "hyper"), CASES)
def test_rate_is_the_spectral_radius_of_the_runners_own_iteration_matrix(objective_name, name, hyper):
    objective = QUADRATICS[objective_name]()
    hyper = scaled(objective, hyper)
    reference = np.max(np.abs(np.linalg.eigvals(iteration_matrix(objective, name, hyper))))
    assert theory.rate(objective, name, **hyper) == pytest.approx(reference, rel=1e-9)


def test_the_iteration_matrix_reference_sees_a_wrong_rule():
    """The reference is not blind: momentum's matrix is not gd's, nor Nesterov's."""
    objective = QUADRATICS["least_squares"]()
    hyper = scaled(objective, {"lr": 0.4, "momentum": 0.8})
    reference = np.max(np.abs(np.linalg.eigvals(iteration_matrix(objective, "momentum", hyper))))
    assert abs(theory.rate(objective, "nesterov", **hyper) - reference) > 1e-3
    assert abs(theory.rate(objective, "gd", lr=hyper["lr"]) - reference) > 1e-3


@pytest.mark.parametrize("name", ["gd", "momentum", "nesterov"])
def test_rate_crosses_one_at_the_optimizers_own_stability_limit(name):
    objective = QUADRATICS["least_squares"]()
    L = objective.hessian_max_eig
    for m in (0.0, 0.5, 0.9) if name != "gd" else (None,):
        hyper = {} if m is None else {"momentum": m}
        if name == "nesterov" and m == 0.0:
            continue  # torch refuses Nesterov without momentum
        limit = float(OPTIMIZERS[name].stable_lr(L, **hyper))
        assert theory.rate(objective, name, lr=limit * (1 - 1e-6), **hyper) < 1
        assert theory.rate(objective, name, lr=limit * (1 + 1e-6), **hyper) > 1


def test_rate_broadcasts_over_a_grid_and_takes_a_built_optimizer():
    objective = shifted_quadratic()
    lrs, ms = np.array([0.5, 2.0, 8.0]), np.array([[0.0], [0.6]])
    grid = theory.rate(objective, "momentum", lr=lrs, momentum=ms)
    assert grid.shape == (2, 3)
    for i, m in enumerate(ms[:, 0]):
        for j, lr in enumerate(lrs):
            assert grid[i, j] == theory.rate(objective, "momentum", lr=lr, momentum=m)
    built = OPTIMIZERS["momentum"](lr=lrs, momentum=0.6)
    np.testing.assert_array_equal(theory.rate(objective, built), grid[1])
    # gd at lr = 4 on curvatures 1/8, 2/9: max |1 - 4 λ| = 1/2, a hand-computed value
    assert theory.rate(objective, "gd", lr=4.0) == pytest.approx(0.5, abs=1e-15)


def test_no_theory_is_none_and_a_bad_key_is_one_line():
    assert theory.rate(shifted_quadratic(), "adam", lr=0.1) is None  # no rate_block: adaptive
    assert theory.rate(shifted_quadratic(), "sgd", lr=0.1) is None  # minibatch noise
    assert theory.rate(sin_cos(), "momentum", lr=0.1) is None  # no Hessian
    assert theory.optimal(sin_cos(), "gd") is None
    assert theory.iterations_to_tol(sin_cos(), "gd", 1e-6, lr=0.1) is None
    scipy = build_optimizer({"optimizer": {"_target_": "runner.scipy_driver.scipy", "method": "BFGS"}, "lr": None})
    assert theory.rate(shifted_quadratic(), scipy) is None
    with pytest.raises(ValueError, match=r"^betas=0.9: expected a key momentum takes: lr, momentum"):
        theory.rate(shifted_quadratic(), "momentum", lr=0.1, betas=0.9)
    with pytest.raises(ValueError, match=r"^optimizer=heavy: expected one of gd, momentum"):
        theory.rate(shifted_quadratic(), "heavy", lr=0.1)


# ----------------------------------------------------------------------------- the optimum


def test_torch_heavy_ball_is_polyaks_with_alpha_lr_and_beta_momentum():
    """The conversion optimal() states: the runner's momentum steps equal Polyak's
    x' = x - alpha g + beta (x - x_prev) with alpha = lr, beta = momentum, from x_prev = x0."""
    objective = QUADRATICS["least_squares"]()
    lr, m = 0.3 / objective.hessian_max_eig, 0.7
    optimizer = OPTIMIZERS["momentum"](lr=lr, momentum=m)
    x, state = objective.x0.copy(), optimizer.init(objective.x0)
    polyak, previous = objective.x0.copy(), objective.x0.copy()
    for _ in range(50):
        x, state = optimizer.update(objective.grad(x), state, x)
        polyak, previous = polyak - lr * objective.grad(polyak) + m * (polyak - previous), polyak
        np.testing.assert_allclose(x, polyak, rtol=1e-12, atol=1e-12 * np.abs(polyak).max())


@pytest.mark.parametrize("objective_name", sorted(QUADRATICS))
@pytest.mark.parametrize("name", ["gd", "momentum", "nesterov"])
def test_the_optimal_hyperparameters_have_the_smallest_rate_on_a_fine_grid(objective_name, name):
    objective = QUADRATICS[objective_name]()
    best = theory.optimal(objective, name)
    rho = theory.rate(objective, name, **best)
    lrs = best["lr"] * np.linspace(0.7, 1.3, 301)
    if name == "gd":
        grid = theory.rate(objective, name, lr=lrs)
    else:
        ms = np.clip(best["momentum"] + np.linspace(-0.2, 0.2, 201), 1e-9, 0.999)[:, None]
        grid = theory.rate(objective, name, lr=lrs, momentum=ms)
    assert rho <= grid.min() + 1e-7  # the double root costs the closed form about sqrt(eps)
    mu, L = objective.hessian_eigenvalues.min(), objective.hessian_max_eig
    kappa = L / mu
    expected = {
        "gd": (kappa - 1) / (kappa + 1),
        "momentum": (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1),
        "nesterov": 1 - 2 / math.sqrt(3 * kappa + 1),
    }[name]
    assert rho == pytest.approx(expected, rel=1e-6)


def test_the_optimal_heavy_ball_converges_in_the_fewest_iterations_of_a_grid_around_it():
    """A 7 x 7 grid around Polyak's (lr*, momentum*), steps of 10 % in lr and 0.05 in momentum, run by the
    runner's batched loop on noise-free least squares (f* ~ 1e-28, so f - f* falls by 1e-20 above the
    floor): the optimum converges within 5 % of the fewest iterations of the grid (a finite tolerance
    keeps the transient's constant, which moves the fastest cell a step from the asymptotic optimum),
    and the grid's edges are clearly slower."""
    objective = least_squares(m=20, n=10, noise=0.0, seed=0)
    best = theory.optimal(objective, "momentum")
    steps = np.arange(-3, 4)
    lr, m = np.meshgrid(best["lr"] * (1 + 0.1 * steps), best["momentum"] + 0.05 * steps, indexing="ij")
    optimizer = OPTIMIZERS["momentum"](lr=lr.ravel(), momentum=m.ravel())
    result = minimize_batch(objective, optimizer, np.tile(objective.x0, (lr.size, 1)), max_iter=3000, record_x=False)
    gap = result.f - objective.f_star
    reached = gap <= 1e-20 * gap[0]
    iterations = np.where(reached.any(axis=0), np.argmax(reached, axis=0), np.inf).reshape(lr.shape)
    centre, fewest = iterations[3, 3], iterations.min()
    assert np.isfinite(centre)
    assert centre <= 1.05 * fewest, iterations
    edges = np.concatenate([iterations[0], iterations[-1], iterations[:, 0], iterations[:, -1]])
    assert edges.min() >= 1.1 * centre, iterations


# ----------------------------------------------------------------------------- iterations and the fit


def test_iterations_for_is_the_stated_rule():
    # 0.25^k <= 1e-6 first at k = 10 (0.25^9 = 3.8e-6, 0.25^10 = 9.5e-7)
    assert theory.iterations_for(0.5, 1.0, 1e-6) == 10
    assert theory.iterations_for(0.5, 1e-7, 1e-6) == 0
    assert theory.iterations_for(1.0, 1.0, 1e-6) == math.inf
    assert theory.iterations_for(0.0, 1.0, 1e-6) == 1
    assert math.isnan(theory.iterations_for(math.nan, 1.0, 1e-6))
    objective = shifted_quadratic()
    k = theory.iterations_to_tol(objective, "gd", 1e-8, lr=4.0)
    start = float(objective.value(objective.x0))
    assert k == math.ceil(math.log(1e-8 / start) / (2 * math.log(0.5)))


def test_measured_rate_fits_the_tail_above_the_floor():
    k = np.arange(200)
    gap = 3.0 * 0.8 ** (2 * k)
    assert theory.measured_rate(gap, 0.0) == pytest.approx(0.8, rel=1e-12)
    assert theory.measured_rate(gap + 5.0, 5.0) == pytest.approx(0.8, rel=1e-5)  # f rounded near f* = 5
    # a fast transient at the start, a plateau at the floor at the end: neither moves the fit
    early = gap + 2.0 * 0.1 ** (2 * k)
    floored = np.maximum(early, 1e-300)
    assert theory.measured_rate(floored, 0.0) == pytest.approx(0.8, rel=1e-6)
    with_rounding = np.where(gap > 1e-14, gap, 1e-14) + 1.0  # f* = 1: rounding near 1e-16 relative
    assert theory.measured_rate(with_rounding, 1.0) == pytest.approx(0.8, rel=1e-4)
    growing = 1.2 ** (2 * k[:30])
    assert theory.measured_rate(np.append(growing, np.inf), 0.0) == pytest.approx(1.2, rel=1e-9)
    assert theory.measured_rate(gap, None) is None
    assert theory.measured_rate(gap[:5], 0.0) is None  # a tail of 3 rows is too short
    # B runs at once, each up to its own last row, equal each run fitted alone
    runs = np.stack([gap, 0.5 ** (2 * k), np.r_[0.9 ** (2 * k[:50]), np.full(150, 7.0)]], axis=1)
    last = np.array([199, 120, 49])
    together = theory.measured_rate(runs, 0.0, last)
    alone = [theory.measured_rate(runs[: last[b] + 1, b], 0.0) for b in range(3)]
    np.testing.assert_allclose(together, alone, rtol=1e-12)


def test_measured_rate_of_many_runs_has_each_runs_bits_alone():
    """Fitted together, 80 runs (summed a row at a time) get the very bits each gets fitted alone (cumsum)."""
    k = np.arange(300)[:, None]
    rates = np.linspace(0.5, 0.99, 80)[None, :]
    runs = 3.0 * rates ** (2 * k) + 1e-3 * 0.2**k
    together = theory.measured_rate(runs, 0.0)
    alone = [theory.measured_rate(runs[:, b], 0.0) for b in range(runs.shape[1])]
    assert None not in alone and np.array_equal(together, np.array(alone))


def test_measured_rate_of_a_sampled_trace_uses_the_true_iterations():
    """A trace that keeps every 7th row, or log-spaced rows (trace.every, trace.schedule=log), is
    fitted at its iteration numbers: the same rate as the full trace, not 7 times faster."""
    from runner.trace import Sampling

    k = np.arange(301)
    early = 3.0 * 0.8 ** (2 * k) + 2.0 * 0.3 ** (2 * k)
    for sampling in (Sampling(every=7), Sampling(schedule="log", points=40)):
        rows = np.flatnonzero(sampling.kept(k, 300))
        sampled = theory.measured_rate(early[rows], 0.0, iterations=k[rows])
        assert sampled == pytest.approx(0.8, rel=1e-6)
    # rows a run does not keep (present False) are left out, as if never written
    present = (k % 2 == 0)[:, None] | np.array([[False, True]])
    both = theory.measured_rate(np.stack([early, early], axis=1), 0.0, present=present)
    np.testing.assert_allclose(both, 0.8, rtol=1e-6)


# ----------------------------------------------------------------------------- the preset, measured


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    """``+experiment=lr_momentum_grid`` run once by the batched launcher, without its figures."""
    folder = tmp_path_factory.mktemp("preset") / "sweep"
    done = run_module(
        "runner",
        "+experiment=lr_momentum_grid",
        "hydra/launcher=batched",
        f"hydra.sweep.dir={folder}",
        "hydra.callbacks.sweep_end.figures=false",
        cwd=folder.parent,
    )
    assert done.returncode == 0, done.stderr
    return folder


def test_the_measured_rate_matches_theory_on_every_convergent_cell_of_the_preset(preset):
    runs = pq.read_table(preset / "runs.parquet").to_pandas()
    assert len(runs) == 28
    converged = runs[runs["status"] == "converged"]
    assert len(converged) >= 20
    objective = shifted_quadratic()
    for _, run in converged.iterrows():
        rho = theory.rate(objective, "momentum", lr=run["lr"], momentum=run["optimizer.momentum"])
        assert run["rate_theory"] == pytest.approx(rho, rel=1e-12)
        assert run["rate_measured"] == pytest.approx(rho, rel=0.05), (run["lr"], run["optimizer.momentum"])
    # and the theory tells the status: rho < 1 where a run converged, > 1 where it diverged
    assert (converged["rate_theory"] < 1).all()
    assert (runs.loc[runs["status"] == "diverged", "rate_theory"] > 1).all()


def column_types(path) -> dict:
    schema = pq.read_schema(path)
    return {name: schema.field(name).type for name in ("rate_theory", "rate_measured")}


def test_the_rate_columns_are_float64_in_a_batched_sweep(preset):
    assert column_types(preset / "runs.parquet") == {"rate_theory": pa.float64(), "rate_measured": pa.float64()}


def test_the_rate_columns_in_a_per_job_sweep_null_without_a_theory(tmp_path):
    folder = tmp_path / "sweep"
    done = run_module(
        "runner",
        "-m",
        "optimizer=momentum,adam",
        "lr=2",
        "tol=1e-10",
        f"hydra.sweep.dir={folder}",
        "hydra.callbacks.sweep_end.figures=false",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert column_types(folder / "runs.parquet") == {"rate_theory": pa.float64(), "rate_measured": pa.float64()}
    table = pq.read_table(folder / "runs.parquet")
    rows = {row["optimizer"]: row for row in table.to_pylist()}
    assert rows["adam"]["rate_theory"] is None  # null, not NaN: no theory for adam
    assert rows["adam"]["rate_measured"] is not None  # f* is known: its trace is fitted all the same
    rho = theory.rate(shifted_quadratic(), "momentum", lr=2.0, momentum=0.9)
    assert rows["momentum"]["rate_theory"] == pytest.approx(rho, rel=1e-12)
    assert rows["momentum"]["rate_measured"] == pytest.approx(rho, rel=0.05)
    summary = json.loads((folder / rows["momentum"]["job"] / "summary.json").read_text())
    assert summary["rate_theory"] == rows["momentum"]["rate_theory"]


# ----------------------------------------------------------------------------- the figures


def test_the_heatmap_marks_the_optimum_and_prints_the_theorys_iterations(preset):
    from runner.figures import heatmap
    from runner.figures._data import TRACE_COLUMNS, load, load_runs

    runs, traces = load_runs(preset), load(preset, columns=TRACE_COLUMNS)
    fig = heatmap.figure(traces, runs)
    best = theory.optimal(shifted_quadratic(), "momentum")
    stars = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == "optimum"]
    assert len(stars) == 2  # on both panels
    for star in stars:
        np.testing.assert_allclose(star.get_xydata(), [[best["lr"], best["momentum"]]], rtol=1e-12)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("lr* = 5.88, momentum* = 0.0204" in text for text in legend)
    printed = {
        t.get_gid(): t.get_text() for ax in fig.axes for t in ax.texts if (t.get_gid() or "").startswith("theory_")
    }
    start = float(shifted_quadratic().value(shifted_quadratic().x0))  # f* = 0
    converged = runs[runs["status"] == "converged"]
    assert len(printed) >= len(converged)
    for _, run in converged.iterrows():
        rho = theory.rate(shifted_quadratic(), "momentum", lr=run["lr"], momentum=run["optimizer.momentum"])
        expected = math.ceil(math.log(1e-12 / start) / (2 * math.log(rho)))
        assert printed[f"theory_iterations:{run['lr']:g}:{run['optimizer.momentum']:g}"] == f"({expected})"


def test_convergence_lines_get_the_theoretical_rate_from_the_same_start(preset):
    from runner.figures import convergence
    from runner.figures._data import TRACE_COLUMNS, load, load_runs

    runs, traces = load_runs(preset), load(preset, columns=TRACE_COLUMNS)
    fig = convergence.figure(traces, runs)
    lines = {
        ln.get_gid()[len("theory:") :]: ln
        for ax in fig.axes
        for ln in ax.get_lines()
        if ln.get_gid() and ln.get_gid().startswith("theory:")
    }
    assert len(lines) == len(runs)  # every run has a theory here, diverged ones included
    start = float(shifted_quadratic().value(shifted_quadratic().x0))
    for _, run in runs.iterrows():
        k, y = lines[run["config_id"]].get_xydata().T
        rho = theory.rate(shifted_quadratic(), "momentum", lr=run["lr"], momentum=run["optimizer.momentum"])
        assert k[0] == 0 and y[0] == pytest.approx(start, rel=1e-12)
        np.testing.assert_allclose(y, start * rho ** (2 * k), rtol=1e-9)
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert convergence.THEORY_LABEL in legend
