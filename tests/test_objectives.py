"""The objectives registry: derivatives, batching, known optima, minibatches, data files, configs.

Tolerances in tiers: 1e-12 for identities, 1e-6 for finite differences.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import hydra.utils
import numpy as np
import pandas as pd
import pytest
import scipy.optimize
from omegaconf import OmegaConf

from objectives import REGISTRY, Objective, least_squares, quartic, shifted_quadratic, sin_cos, two_layer_net
from objectives.data import load_xy
from runner.errors import ConfigError

CONF = Path(__file__).resolve().parents[1] / "conf" / "objective"

# Small instances keep the finite-difference checks fast; sin_cos n=13 spans both bound regimes.
SMALL = {
    "quartic": {},
    "shifted_quadratic": {"a": 1.5, "b": -0.5},
    "sin_cos": {"n": 13, "seed": 1},
    "least_squares": {"m": 30, "n": 4, "seed": 2},
    "two_layer_net": {"m": 25, "n": 3, "p": 4, "seed": 3},
}
DATA_OBJECTIVES = ["least_squares", "two_layer_net"]


def small(name: str) -> Objective:
    return REGISTRY[name](**SMALL.get(name, {}))


def points(objective: Objective, shape, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return objective.x0 + rng.standard_normal((*tuple(shape), objective.dim))


def central_difference(value, x: np.ndarray) -> np.ndarray:
    """Central differences of ``value`` at x (..., n), all 2n evaluations in one batched call."""
    n = x.shape[-1]
    h = 1e-6 * (1.0 + np.abs(x))
    plus = x[..., None, :] + h[..., None] * np.eye(n)
    minus = x[..., None, :] - h[..., None] * np.eye(n)
    step = np.diagonal(plus - minus, axis1=-2, axis2=-1)  # the steps actually taken, after rounding
    return (value(plus) - value(minus)) / step


def one_line_error(excinfo, key: str, *fragments: str) -> str:
    text = str(excinfo.value)
    assert excinfo.value.key == key
    assert text.startswith(key + "=")
    assert "\n" not in text
    for fragment in fragments:
        assert fragment in text
    return text


# ---------------------------------------------------------------- registry


def test_registry_names_match_modules_and_objective_names():
    assert sorted(REGISTRY) == ["least_squares", "quartic", "shifted_quadratic", "sin_cos", "two_layer_net"]
    for name, factory in REGISTRY.items():
        assert factory.__module__ == f"objectives.{name}"
        objective = factory()
        assert objective.name == name
        assert objective.x0.shape == (objective.dim,) and objective.x0.dtype == float


# ---------------------------------------------------------------- derivatives and batching


@pytest.mark.parametrize("name", sorted(REGISTRY))
@pytest.mark.parametrize("shape", [(5,), (3, 4)], ids=["points", "batch3x4"])
def test_gradient_matches_central_differences(name, shape):
    objective = small(name)
    x = points(objective, shape)
    f, g = objective.value_and_grad(x)
    assert f.shape == tuple(shape) and g.shape == x.shape
    fd = central_difference(objective.value, x)
    scale = 1.0 + np.max(np.abs(g))
    np.testing.assert_allclose(fd, g, rtol=1e-6, atol=1e-6 * scale)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_gradient_unbatched_point(name):
    objective = small(name)
    x = points(objective, (), seed=7)
    f, g = objective.value_and_grad(x)
    assert np.shape(f) == () and g.shape == (objective.dim,)
    np.testing.assert_allclose(
        central_difference(objective.value, x), g, rtol=1e-6, atol=1e-6 * (1 + np.max(np.abs(g)))
    )


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_batched_equals_stacked_single_calls(name):
    objective = small(name)
    x = points(objective, (3, 4), seed=1)
    f, g = objective.value_and_grad(x)
    for index in np.ndindex(3, 4):
        f1, g1 = objective.value_and_grad(x[index])
        np.testing.assert_allclose(f[index], f1, rtol=1e-12, atol=0)
        np.testing.assert_allclose(g[index], g1, rtol=1e-12, atol=1e-12 * np.max(np.abs(g1)))


def test_values_match_the_formulas():
    rng = np.random.default_rng(0)
    t = rng.uniform(-6, 3, 20)
    np.testing.assert_allclose(quartic().value(t[:, None]), np.polyval([1, 7, 5, -17, 3], t), rtol=1e-12)
    np.testing.assert_allclose(quartic().grad(t[:, None])[:, 0], np.polyval([4, 21, 10, -17], t), rtol=1e-12)

    x = rng.normal(size=(6, 2))
    expected = ((x[:, 0] - 1.5) / 4) ** 2 + ((x[:, 1] + 0.5) / 3) ** 2
    np.testing.assert_allclose(shifted_quadratic(a=1.5, b=-0.5).value(x), expected, rtol=1e-12)


def test_sin_cos_equals_the_notes_generator_sum():
    objective = sin_cos()

    def notes(x):  # the notes' code, eq. 2.17, verbatim but for the length
        return sum(
            0.1 * (x[i] - (i + 1)) ** 2 + np.sin(x[i]) * np.cos(x[(i + 1) % 50]) + np.exp(-(x[i] ** 2))
            for i in range(50)
        )

    for x in np.random.default_rng(3).uniform(-3, 3, (5, 50)):
        np.testing.assert_allclose(objective.value(x), notes(x), rtol=1e-12)


def test_sin_cos_cyclic_term_in_one_and_two_dimensions():
    # n = 1: f = 0.1 (x-1)^2 + sin x cos x + exp(-x^2); n = 2 couples x1 and x2 both ways.
    x = 0.3
    f1, g1 = sin_cos(n=1).value_and_grad(np.array([x]))
    assert f1 == pytest.approx(0.1 * (x - 1) ** 2 + np.sin(x) * np.cos(x) + np.exp(-x * x), rel=1e-14)
    assert g1[0] == pytest.approx(0.2 * (x - 1) + np.cos(2 * x) - 2 * x * np.exp(-x * x), rel=1e-14)
    u, v = 0.4, -0.9
    f2 = sin_cos(n=2).value(np.array([u, v]))
    expected = 0.1 * (u - 1) ** 2 + 0.1 * (v - 2) ** 2 + np.sin(u) * np.cos(v) + np.sin(v) * np.cos(u)
    assert f2 == pytest.approx(expected + np.exp(-u * u) + np.exp(-v * v), rel=1e-14)


def test_two_layer_net_value_matches_a_direct_forward_pass(tmp_path):
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(9, 3)), rng.normal(size=9)
    path = tmp_path / "net.npz"
    np.savez(path, X=X, y=y)
    objective = two_layer_net(data=str(path), p=4)
    theta = rng.normal(size=objective.dim)
    W1, b1, w2, b2 = theta[:12].reshape(4, 3), theta[12:16], theta[16:20], theta[20]
    y_hat = np.maximum(X @ W1.T + b1, 0) @ w2 + b2
    assert objective.dim == 4 * 3 + 2 * 4 + 1
    assert objective.value(theta) == pytest.approx(np.sum((y_hat - y) ** 2), rel=1e-12)


# ---------------------------------------------------------------- known optima


@pytest.mark.parametrize("name", [name for name in sorted(REGISTRY) if small(name).x_star is not None])
def test_known_minimum_is_stationary_and_matches_f_star(name):
    objective = small(name)
    f, g = objective.value_and_grad(objective.x_star)
    scale = 1.0 + np.max(np.abs(objective.grad(objective.x0)))
    assert np.max(np.abs(g)) <= 1e-12 * scale
    assert f == pytest.approx(objective.f_star, rel=1e-15, abs=1e-15)
    # No nearby point is lower.
    nearby = objective.x_star + 1e-3 * np.random.default_rng(0).standard_normal((50, objective.dim))
    assert np.all(objective.value(nearby) > objective.f_star)


def test_quartic_critical_points_and_their_types():
    objective = quartic()

    def slope(t):
        return objective.grad(np.array([t]))[0]

    def curvature(t, h=1e-5):
        return (slope(t + h) - slope(t - h)) / (2 * h)

    roots = [scipy.optimize.brentq(slope, lo, hi, xtol=1e-15) for lo, hi in [(-5, -3), (-2, -1), (0, 1)]]
    assert roots == pytest.approx([-4.48, -1.43, 0.66], abs=0.01)
    assert [curvature(r) > 0 for r in roots] == [True, False, True]  # min, max, min
    values = [float(objective.value(np.array([r]))) for r in roots]
    assert values[0] == min(values)
    assert objective.x_star[0] == pytest.approx(roots[0], rel=1e-15)
    assert objective.f_star == pytest.approx(values[0], rel=1e-15)
    # The float literal is the nearest double to the root: no neighbour has a smaller |f'|.
    x = objective.x_star[0]
    assert abs(slope(x)) <= min(abs(slope(np.nextafter(x, -10))), abs(slope(np.nextafter(x, 0))))


def test_shifted_quadratic_optimum_curvature_and_default_start():
    objective = shifted_quadratic(a=2.0, b=-3.0)
    np.testing.assert_array_equal(objective.x_star, [2.0, -3.0])
    np.testing.assert_array_equal(objective.x0, [8.0, 9.0])
    assert objective.hessian_max_eig == 2 / 9
    # The true gradient, not the notes' ((x1-a)/2, 2(x2-b)/3).
    np.testing.assert_allclose(objective.grad(np.array([8.0, 9.0])), [6 / 8, 24 / 9], rtol=1e-15)


@pytest.mark.parametrize("name", ["shifted_quadratic", "least_squares"])
def test_hessian_max_eig_is_the_largest_curvature(name):
    objective = small(name)
    # The objectives are quadratic, so gradient differences along unit vectors give the Hessian exactly.
    x = points(objective, (), seed=2)
    eye = np.eye(objective.dim)
    hessian = objective.grad(x + eye) - objective.grad(x)
    np.testing.assert_allclose(hessian, hessian.T, rtol=1e-10, atol=1e-10)
    assert objective.hessian_max_eig == pytest.approx(np.linalg.eigvalsh(hessian)[-1], rel=1e-10)


def test_least_squares_without_noise_recovers_a_zero_residual():
    objective = least_squares(m=40, n=6, noise=0.0, seed=4)
    assert objective.f_star == pytest.approx(0.0, abs=1e-20)
    assert least_squares(m=40, n=6, noise=0.5, seed=4).f_star > 1.0


def test_two_layer_net_teacher_draw_order_is_as_documented():
    # With noise 0 the teacher drawn right after X (standard normal, order W1, b1, w2, b2) fits exactly.
    m, n, p, seed = 30, 3, 5, 11
    rng = np.random.default_rng(seed)
    rng.standard_normal((m, n))
    teacher = rng.standard_normal(p * n + 2 * p + 1)
    objective = two_layer_net(m=m, n=n, p=p, noise=0.0, seed=seed)
    assert objective.value(teacher) == pytest.approx(0.0, abs=1e-20)
    assert objective.value(objective.x0) > 1.0


def torch_linear_init(rng, n, p):
    """nn.Linear's default init for Linear(n, p) then Linear(p, 1): U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    a, b = 1 / np.sqrt(n), 1 / np.sqrt(p)
    return np.concatenate(
        [rng.uniform(-a, a, p * n), rng.uniform(-a, a, p), rng.uniform(-b, b, p), rng.uniform(-b, b, 1)]
    )


def test_two_layer_net_default_x0_is_torch_linear_init_drawn_after_the_data():
    m, n, p, seed = 10, 4, 9, 3
    rng = np.random.default_rng(seed)
    rng.standard_normal((m, n)), rng.standard_normal(p * n + 2 * p + 1), rng.standard_normal(m)
    np.testing.assert_array_equal(two_layer_net(m=m, n=n, p=p, seed=seed).x0, torch_linear_init(rng, n, p))


def test_two_layer_net_default_x0_with_a_data_file_is_drawn_first(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.ones((6, 2)), y=np.arange(6.0))
    x0 = two_layer_net(data=str(path), p=3, seed=4).x0
    np.testing.assert_array_equal(x0, torch_linear_init(np.random.default_rng(4), 2, 3))


@pytest.mark.parametrize(
    "name, seeds_x0, seeds_data",
    [("sin_cos", True, False), ("least_squares", False, True), ("two_layer_net", True, True)],
)
def test_seed_determines_the_random_parts(name, seeds_x0, seeds_data):
    a, b, c = (REGISTRY[name](seed=s) for s in (0, 0, 1))
    x = points(a, (), seed=3)
    np.testing.assert_array_equal(a.x0, b.x0)
    assert a.value(x) == b.value(x)
    assert (not np.array_equal(a.x0, c.x0)) == seeds_x0
    assert (a.value(x) != c.value(x)) == seeds_data


# ---------------------------------------------------------------- bounds


def test_sin_cos_bounds_and_default_start():
    objective = sin_cos(n=50, seed=0)
    assert objective.has_bounds
    np.testing.assert_array_equal(objective.upper, [1.0] * 10 + [20.0] * 40)
    assert np.all(objective.lower == -np.inf)
    np.testing.assert_array_equal(objective.x0, np.random.default_rng(0).uniform(0, 1, 50))
    np.testing.assert_array_equal(objective.project(np.full(50, 30.0)), objective.upper)


@pytest.mark.parametrize("bad_index, value", [(0, 1.5), (9, 1.01), (10, 20.5)])
def test_sin_cos_x0_outside_bounds_is_refused(bad_index, value):
    x0 = np.zeros(50)
    x0[bad_index] = value
    with pytest.raises(ConfigError) as excinfo:
        sin_cos(x0=list(x0))
    one_line_error(excinfo, "objective.x0", f"x0[{bad_index}]")


def test_sin_cos_x0_on_the_bounds_is_accepted():
    x0 = [1.0] * 10 + [20.0] * 40
    np.testing.assert_array_equal(sin_cos(x0=x0).x0, x0)


# ---------------------------------------------------------------- minibatches


@pytest.mark.parametrize("name", DATA_OBJECTIVES)
def test_minibatches_of_a_partition_average_to_the_full_objective(name):
    objective = small(name)
    m, s = objective.n_samples, 5
    assert m % s == 0
    idx = np.random.default_rng(0).permutation(m).reshape(m // s, s)
    x = points(objective, (), seed=4)
    f_hat, g_hat = objective.minibatch_value_and_grad(x, idx)  # x broadcasts over the m/s batches
    assert f_hat.shape == (m // s,) and g_hat.shape == (m // s, objective.dim)
    f, g = objective.value_and_grad(x)
    assert np.mean(f_hat) == pytest.approx(f, rel=1e-12)
    np.testing.assert_allclose(np.mean(g_hat, axis=0), g, rtol=1e-12, atol=1e-12 * np.max(np.abs(g)))
    # The estimates really differ from batch to batch (it is a sample, not the full sum).
    assert np.ptp(f_hat) > 1e-6 * f


@pytest.mark.parametrize("name", DATA_OBJECTIVES)
def test_minibatch_with_every_sample_is_the_full_objective(name):
    objective = small(name)
    x = points(objective, (), seed=5)
    f_hat, g_hat = objective.minibatch_value_and_grad(x, np.arange(objective.n_samples))
    f, g = objective.value_and_grad(x)
    assert f_hat == pytest.approx(f, rel=1e-12)
    np.testing.assert_allclose(g_hat, g, rtol=1e-12, atol=1e-12 * np.max(np.abs(g)))


@pytest.mark.parametrize("name", DATA_OBJECTIVES)
def test_batched_minibatch_with_own_indices_equals_single_calls(name):
    objective = small(name)
    rng = np.random.default_rng(6)
    x = points(objective, (2, 3), seed=6)
    idx = rng.integers(0, objective.n_samples, size=(2, 3, 7))
    f_hat, g_hat = objective.minibatch_value_and_grad(x, idx)
    assert f_hat.shape == (2, 3) and g_hat.shape == (2, 3, objective.dim)
    for index in np.ndindex(2, 3):
        f1, g1 = objective.minibatch_value_and_grad(x[index], idx[index])
        assert f_hat[index] == pytest.approx(f1, rel=1e-12)
        np.testing.assert_allclose(g_hat[index], g1, rtol=1e-12, atol=1e-12 * np.max(np.abs(g1)))


@pytest.mark.parametrize("name", DATA_OBJECTIVES)
def test_minibatch_gradient_matches_finite_differences_of_the_estimate(name):
    objective = small(name)
    x = points(objective, (4,), seed=8)
    idx = np.random.default_rng(8).integers(0, objective.n_samples, size=(4, 6))

    def estimate(z):  # z (4, 2n, dim): every perturbed point uses its batch entry's indices
        return objective.minibatch_value_and_grad(z, idx[:, None, :])[0]

    g = objective.minibatch_value_and_grad(x, idx)[1]
    np.testing.assert_allclose(central_difference(estimate, x), g, rtol=1e-6, atol=1e-6 * (1 + np.max(np.abs(g))))


def test_full_gradient_objectives_have_no_samples():
    for name in ["quartic", "shifted_quadratic", "sin_cos"]:
        objective = REGISTRY[name]()
        assert objective.n_samples is None and objective.minibatch_value_and_grad is None


# ---------------------------------------------------------------- data files


@pytest.fixture
def xy():
    rng = np.random.default_rng(9)
    return rng.normal(size=(7, 3)), rng.normal(size=7)


def write(path: Path, X, y, target="y", columns=("a", "b", "c")) -> Path:
    if path.suffix == ".npz":
        np.savez(path, **{"X": X, target: y})
    else:
        frame = pd.DataFrame(X, columns=list(columns))
        frame.insert(1, target, y)  # the target need not be last
        frame.to_csv(path, index=False) if path.suffix == ".csv" else frame.to_parquet(path)
    return path


@pytest.mark.parametrize("suffix", [".npz", ".csv", ".parquet"])
@pytest.mark.parametrize("target", ["y", "label"])
def test_load_xy_round_trip(tmp_path, xy, suffix, target):
    X, y = xy
    path = write(tmp_path / f"data{suffix}", X, y, target=target)
    X2, y2 = load_xy(str(path), target)
    assert X2.dtype == float and y2.dtype == float
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)


def test_load_xy_relative_path_is_relative_to_the_cwd(tmp_path, xy, monkeypatch):
    write(tmp_path / "rel.csv", *xy)
    monkeypatch.chdir(tmp_path)
    np.testing.assert_array_equal(load_xy("rel.csv")[1], xy[1])


def test_load_xy_integer_columns_become_floats(tmp_path):
    path = tmp_path / "ints.csv"
    path.write_text("a,b,y\n1,2,3\n4,5,6\n")
    X, y = load_xy(str(path))
    np.testing.assert_array_equal(X, [[1.0, 2.0], [4.0, 5.0]])
    np.testing.assert_array_equal(y, [3.0, 6.0])


def _csv(text):
    return lambda tmp_path: _text(tmp_path / "bad.csv", text)


def _text(path, text):
    path.write_text(text)
    return path


def _npz(**arrays):
    def make(tmp_path):
        np.savez(tmp_path / "bad.npz", **arrays)
        return tmp_path / "bad.npz"

    return make


BAD_FILES = {
    "missing": (lambda tmp_path: tmp_path / "nope.csv", "objective.data", ["existing .csv file"]),
    "extension": (
        lambda tmp_path: _text(tmp_path / "data.txt", "a,y\n1,2\n"),
        "objective.data",
        [".npz", ".csv", ".parquet"],
    ),
    "ragged_csv": (_csv("a,b,y\n1,2,3\n4,5,6,7,8\n"), "objective.data", ["readable .csv"]),
    "empty_csv": (lambda tmp_path: _text(tmp_path / "bad.csv", ""), "objective.data", ["readable .csv"]),
    "text_parquet": (
        lambda tmp_path: _text(tmp_path / "bad.parquet", "not parquet"),
        "objective.data",
        ["readable .parquet"],
    ),
    "text_npz": (lambda tmp_path: _text(tmp_path / "bad.npz", "not an archive"), "objective.data", ["readable .npz"]),
    "npy_as_npz": (
        lambda tmp_path: (
            np.save(tmp_path / "bad.npy", np.ones(3)),
            (tmp_path / "bad.npy").rename(tmp_path / "bad.npz"),
        )[1],
        "objective.data",
        ["readable .npz"],
    ),
    "text_column": (_csv("a,city,y\n1,Oslo,3\n4,Rome,6\n"), "objective.data", ["numeric", "'city'"]),
    "nan": (_csv("a,b,y\n1,,3\n4,5,6\n"), "objective.data", ["finite", "'b'"]),
    "inf_target": (_npz(X=np.ones((3, 2)), y=np.array([1.0, np.inf, 2.0])), "objective.data", ["finite", "'y'"]),
    "no_rows": (_csv("a,b,y\n"), "objective.data", ["at least 1 row"]),
    "no_features": (_csv("y\n1\n2\n"), "objective.data", ["at least 1 feature"]),
    "shape_mismatch": (_npz(X=np.ones((5, 2)), y=np.ones(4)), "objective.data", ["target has 4", "matrix has 5"]),
    "matrix_not_2d": (_npz(X=np.ones(5), y=np.ones(5)), "objective.data", ["2-D"]),
    "two_matrices": (
        _npz(X=np.ones((5, 2)), Z=np.ones((5, 2)), y=np.ones(5)),
        "objective.data",
        ["exactly one other", "X", "Z"],
    ),
    "string_array": (_npz(X=np.array([["a"], ["b"]]), y=np.ones(2)), "objective.data", ["numeric", "'X'"]),
    "no_target_column": (_csv("a,b\n1,2\n"), "objective.target", ["a, b"]),
    "no_target_array": (_npz(X=np.ones((3, 2)), t=np.ones(3)), "objective.target", ["X, t"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_load_xy_errors_name_the_key_in_one_line(tmp_path, case):
    make, key, fragments = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(ConfigError) as excinfo:
        load_xy(str(path), "y")
    one_line_error(excinfo, key, *fragments)


def test_load_xy_rejects_a_non_string_target_and_path(tmp_path, xy):
    path = write(tmp_path / "d.csv", *xy)
    with pytest.raises(ConfigError) as excinfo:
        load_xy(str(path), 3)
    one_line_error(excinfo, "objective.target")
    with pytest.raises(ConfigError) as excinfo:
        load_xy(5)
    one_line_error(excinfo, "objective.data")


@pytest.mark.parametrize("suffix", [".npz", ".csv", ".parquet"])
def test_data_objectives_use_the_file(tmp_path, xy, suffix):
    X, y = xy
    path = str(write(tmp_path / f"d{suffix}", X, y))
    ls = least_squares(data=path, m=3, n=99)  # the file wins over m and n
    assert ls.dim == 3 and ls.n_samples == 7
    theta = np.arange(3.0)
    assert ls.value(theta) == pytest.approx(np.sum((X @ theta - y) ** 2), rel=1e-12)
    np.testing.assert_allclose(ls.x_star, np.linalg.lstsq(X, y, rcond=None)[0], rtol=1e-12)
    net = two_layer_net(data=path, p=2)
    assert net.dim == 2 * 3 + 2 * 2 + 1 and net.n_samples == 7


def test_data_objectives_report_missing_target_in_the_file(tmp_path, xy):
    path = str(write(tmp_path / "d.csv", *xy))
    for factory in (least_squares, two_layer_net):
        with pytest.raises(ConfigError) as excinfo:
            factory(data=path, target="price")
        one_line_error(excinfo, "objective.target", "price")


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "factory, kwargs, key",
    [
        (least_squares, {"m": 0}, "objective.m"),
        (least_squares, {"m": 2.5}, "objective.m"),
        (least_squares, {"n": 0}, "objective.n"),
        (least_squares, {"noise": -0.1}, "objective.noise"),
        (least_squares, {"noise": "high"}, "objective.noise"),
        (least_squares, {"seed": -1}, "objective.seed"),
        (two_layer_net, {"p": 0}, "objective.p"),
        (two_layer_net, {"m": True}, "objective.m"),
        (two_layer_net, {"noise": float("nan")}, "objective.noise"),
        (sin_cos, {"n": 0}, "objective.n"),
        (shifted_quadratic, {"a": "two"}, "objective.a"),
        (shifted_quadratic, {"b": float("inf")}, "objective.b"),
    ],
)
def test_bad_sizes_and_numbers_are_config_errors(factory, kwargs, key):
    with pytest.raises(ConfigError) as excinfo:
        factory(**kwargs)
    one_line_error(excinfo, key)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_x0_of_the_wrong_length_is_refused(name):
    objective = small(name)
    with pytest.raises(ConfigError) as excinfo:
        REGISTRY[name](**SMALL.get(name, {}), x0=[0.0] * (objective.dim + 1))
    one_line_error(excinfo, "objective.x0", f"{objective.dim} numbers")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_x0_given_is_used(name):
    objective = small(name)
    x0 = np.minimum(objective.x0 - 0.25, 0.5)  # within sin_cos's bounds
    np.testing.assert_array_equal(REGISTRY[name](**SMALL.get(name, {}), x0=list(x0)).x0, x0)


# ---------------------------------------------------------------- configs


def test_every_objective_has_a_config_and_every_config_an_objective():
    assert sorted(p.stem for p in CONF.glob("*.yaml")) == sorted(REGISTRY)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_config_instantiates_and_matches_the_factory_signature(name):
    node = OmegaConf.load(CONF / f"{name}.yaml")
    factory = REGISTRY[name]
    assert hydra.utils.get_method(node["_target_"]) is factory
    parameters = inspect.signature(factory).parameters
    raw = OmegaConf.to_container(node, resolve=False)
    assert set(raw) - {"_target_"} == set(parameters)
    for key, parameter in parameters.items():
        expected = "${seed}" if key == "seed" else parameter.default
        assert raw[key] == expected, key

    root = OmegaConf.create({"seed": 0, "objective": node})
    objective = hydra.utils.instantiate(root.objective)
    assert isinstance(objective, Objective) and objective.name == name
    np.testing.assert_array_equal(objective.x0, factory().x0)
    if "seed" in parameters:  # the run's seed reaches the objective
        reseeded = hydra.utils.instantiate(OmegaConf.create({"seed": 1, "objective": node}).objective)
        direct = factory(seed=1)
        np.testing.assert_array_equal(reseeded.x0, direct.x0)
        assert reseeded.value(objective.x0) == direct.value(objective.x0)


def test_config_overrides_reach_the_factory():
    node = OmegaConf.load(CONF / "shifted_quadratic.yaml")
    node.x0 = [1, 2]  # what objective.x0=[1,2] on the command line gives: a ListConfig
    objective = hydra.utils.instantiate(OmegaConf.create({"seed": 0, "objective": node}).objective)
    np.testing.assert_array_equal(objective.x0, [1.0, 2.0])
