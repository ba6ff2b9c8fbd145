"""Side-by-side timings of the runner on this machine: ``python benchmarks/run.py``.

Each figure is measured against its reference in the same run and printed as a ratio
with both absolute times. Not a test: CI does not run it, and the numbers depend on
the machine and its load (take the best of a few repeats where noted).

1. sweep: a 1,000-config lr x momentum grid (shifted_quadratic, momentum, 1,000
   iterations each, tol=0), end to end from the shell with ``hydra/launcher=batched``,
   against the basic launcher (measured on 25 and 50 configs, extrapolated linearly to
   1,000) and a hand-written JAX/optax script (``benchmarks/jax_grid.py``, run by this
   Python: ``pip install -e '.[bench]'`` installs jax and optax; without them its line says
   so). The batched sweep and the JAX script take turns, the best of five each. Like the
   script, the sweep computes and writes its traces: timed without the figures and the page
   (``hydra.callbacks.sweep_end.figures=false``, ``report=false``), in one process and with
   ``hydra.launcher.engine=fork`` (its chunks on every core) in the same turns, then with report.html, and
   once with both, as the command runs by default; then ``python -m runner.plot`` of the
   sweep's folder against the sweep. Every command runs with Python's bytecode cache on
   (``_env.child_environment``), as an installed package does.
2. loop overhead: ``runner.loop.minimize`` per iteration against a bare numpy loop doing
   the same update and recording the same trace: gd on shifted_quadratic, Adam on sin_cos 50-D.
3. torch: runner's gradient + Adam step against ``torch.optim.Adam`` with autograd on
   sin_cos 50-D (skipped with a note where torch does not import; run this script with
   ``/tmp/torch-venv/bin/python`` for it).
4. loading: ``runner.load`` / ``runner.load_runs`` of the 1,000-run sweep of figure 1 (1M rows).
   Fresh against stale tables at 20M rows, time and peak memory: ``benchmarks/loading.py``.
5. parallel launcher: hydra-joblib-launcher (2 workers) against the basic launcher on 4
   CPU-bound jobs.

6. scaling: the batched grid of figure 1 at 1,000 and 10,000 configs, time and peak memory.

Options: ``--only 1,3`` runs some figures; ``--keep`` keeps the outputs (printed).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from time import perf_counter

import numpy as np
from _env import child_environment

REPO = Path(__file__).resolve().parent.parent

LRS = [round(0.05 * (i + 1), 4) for i in range(40)]
MOMENTA = [round(0.04 * i, 4) for i in range(25)]
GRID = ["optimizer=momentum", "tol=0", "max_iter=1000"]
NO_REPORT = "hydra.callbacks.sweep_end.report=false"
FORK = "hydra.launcher.engine=fork"  # the chunks on every core, in forked copies of the launcher

rows: list[tuple[str, str, str]] = []


def report(figure: str, what: str, value: str) -> None:
    rows.append((figure, what, value))
    print(f"  {what:<62} {value}", flush=True)


def seconds(t: float) -> str:
    return f"{t:.3f} s" if t < 10 else f"{t:.1f} s"


def shell(args: list[str], *, figures: bool, cwd: Path, python: str = sys.executable) -> float:
    """Wall time of one command from the shell (a fresh interpreter), in seconds.

    ``figures=False`` adds ``hydra.callbacks.sweep_end.figures=false`` to a sweep, so the
    timing is the launcher's and the tables'.
    """
    return shell_memory(args, figures=figures, cwd=cwd, python=python)[0]


def shell_memory(args: list[str], *, figures: bool, cwd: Path, python: str = sys.executable) -> tuple[float, float]:
    """:func:`shell`'s wall time, and the command's peak resident memory in MB (its own, from wait4)."""
    if not figures and "-m" in args[2:]:
        args = [*args, "hydra.callbacks.sweep_end.figures=false"]
    env = child_environment()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = perf_counter()
        child = subprocess.Popen([python, *args], cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(args[:6])} ...: exit {child.returncode}\n{tail}")
    return elapsed, usage.ru_maxrss / 1024  # KB on Linux


def sweep(launcher: str, lrs: list[float], out: Path, *extra: str, figures: bool = False) -> float:
    return shell(sweep_args(launcher, lrs, out, *extra), figures=figures, cwd=out.parent)


def sweep_args(launcher: str, lrs: list[float], out: Path, *extra: str, momenta: list[float] = MOMENTA) -> list[str]:
    return [
        "-m",
        "runner",
        "-m",
        f"hydra/launcher={launcher}",
        "lr=" + ",".join(map(str, lrs)),
        "optimizer.momentum=" + ",".join(map(str, momenta)),
        *GRID,
        f"hydra.sweep.dir={out}",
        *extra,
    ]


def best(fn, repeats: int = 3) -> float:
    return min(fn() for _ in range(repeats))


# ----------------------------------------------------------------------------- 1. sweep


def figure_sweep(root: Path) -> Path:
    print("1. sweep: 1,000-config lr x momentum grid, 1,000 iterations each, from the shell", flush=True)
    n50 = LRS[:2]  # 2 lr x 25 momenta
    t_basic_25 = best(lambda: sweep("basic", LRS[:1], _fresh(root / "basic25")), 2)
    t_basic_50 = best(lambda: sweep("basic", LRS[:2], _fresh(root / "basic50")), 2)
    per_job = (t_basic_50 - t_basic_25) / 25
    t_basic_1000 = t_basic_50 + per_job * 950
    report("1", "basic launcher, 25 configs (no figures)", seconds(t_basic_25))
    report("1", "basic launcher, 50 configs (no figures)", seconds(t_basic_50))
    report("1", "basic launcher, per job (slope 25 -> 50)", f"{per_job * 1e3:.0f} ms")
    report("1", "basic launcher, 1,000 configs (extrapolated)", seconds(t_basic_1000))
    t_b50 = best(lambda: sweep("batched", n50, _fresh(root / "batched50")))
    report("1", "batched launcher, 50 configs (no figures)", seconds(t_b50))
    t_exact50 = sweep("batched", n50, _fresh(root / "exact50"), "hydra.launcher.compose=exact")
    report("1", "batched, 50 configs, compose=exact (load_sweep_config per job)", seconds(t_exact50))
    out = root / "batched1000"
    jax_out = root / "jax.parquet"
    jax_args = [str(REPO / "benchmarks" / "jax_grid.py"), "--out", str(jax_out)]
    has_jax = all(importlib.util.find_spec(name) is not None for name in ("jax", "optax"))
    t_b1000 = t_fork = t_jax = math.inf
    for _ in range(5):  # taking turns, so that a busy moment of the machine costs each alike
        t_b1000 = min(t_b1000, sweep("batched", LRS, _fresh(out), NO_REPORT))
        t_fork = min(t_fork, sweep("batched", LRS, _fresh(root / "fork1000"), NO_REPORT, FORK))
        if has_jax:
            t_jax = min(t_jax, shell(jax_args, figures=False, cwd=root))
    t_page = best(lambda: sweep("batched", LRS, _fresh(root / "batched1000_report")))
    report("1", "batched launcher, 1,000 configs (no figures, no report.html)", seconds(t_b1000))
    report("1", "batched launcher, 1,000 configs, with report.html (no figures)", seconds(t_page))
    report("1", "batched launcher, 1,000 configs, engine=fork (every core; no figures, no page)", seconds(t_fork))
    ratio = t_basic_1000 / t_b1000
    report("1", "RATIO basic (extrapolated) / batched, 1,000 configs", f"{ratio:.0f}x  (target >= 100x)")
    report("1", "ABSOLUTE batched, 1,000 configs", f"{seconds(t_b1000)}  (target <= ~1 s)")
    t_startup = best(
        lambda: shell(["-m", "runner", "max_iter=0", f"hydra.run.dir={root / 'single'}"], figures=False, cwd=root)
    )
    report("1", "for scale: one run, max_iter=0 (interpreter + imports + Hydra)", seconds(t_startup))
    if has_jax:
        report("1", "hand-written JAX/optax (vmap + jit + scan, x64), same grid", seconds(t_jax))
        report(
            "1",
            "RATIO JAX / batched (speed-up; both compute and write the traces)",
            f"{t_jax / t_b1000:.2f}x  (target >= 1.5x)",
        )
        report("1", "RATIO JAX / batched, engine=fork", f"{t_jax / t_fork:.2f}x  (target >= 1.5x)")
        report("1", "RATIO JAX / batched with report.html", f"{t_jax / t_page:.2f}x")
    else:
        report("1", "hand-written JAX/optax", "skipped: jax and optax not installed (pip install -e '.[bench]')")
    t_fig = sweep("batched", LRS, _fresh(root / "batched1000_figures"), figures=True)
    report("1", "batched launcher, 1,000 configs, with figures (the default)", seconds(t_fig))
    t_plot = best(lambda: shell(["-m", "runner.plot", str(out)], figures=False, cwd=root))
    report("1", "figures of the 1,000-config sweep: python -m runner.plot DIR", seconds(t_plot))
    report("1", "RATIO figures / sweep", f"{t_plot / t_b1000:.2f}x  (target <= 1x)")
    t_fig50 = sweep("basic", LRS[:2], _fresh(root / "basic50_figures"), figures=True)
    report("1", "basic launcher, 50 configs, with figures", seconds(t_fig50))
    return out


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


# ----------------------------------------------------------------------------- 2. loop overhead


def _trace_columns(n: int, dim: int):
    """Room for the rows the loop records (f, grad norm, nfev, time, x), allocated before the clock starts."""
    return np.empty(n + 1), np.empty(n + 1), np.empty(n + 1, np.int64), np.empty(n + 1), np.empty((n + 1, dim))


def bare_gd(objective, lr: float, n: int) -> float:
    """gd with the trace the loop records: f, grad norm, x, counts, time; no stopping rules."""
    x = np.array(objective.x0, dtype=float)
    F, GN, NF, T, X = _trace_columns(n, len(x))
    value_and_grad = objective.value_and_grad
    start = perf_counter()
    for k in range(n + 1):
        f, g = value_and_grad(x)
        F[k], GN[k], NF[k], T[k] = f, math.sqrt(g @ g), k + 1, perf_counter() - start
        X[k] = x
        if k == n:
            break
        x = x - lr * g
    return perf_counter() - start


def bare_adam(objective, lr: float, n: int, b1=0.9, b2=0.999, eps=1e-8) -> float:
    """Adam (torch's formulas) with the projection onto the bounds and the same trace."""
    x = np.array(objective.x0, dtype=float)
    lower, upper = objective.lower, objective.upper
    m, v = np.zeros_like(x), np.zeros_like(x)
    F, GN, NF, T, X = _trace_columns(n, len(x))
    value_and_grad = objective.value_and_grad
    start = perf_counter()
    for k in range(n + 1):
        f, g = value_and_grad(x)
        projected = x - np.clip(x - g, lower, upper)
        F[k], GN[k], NF[k], T[k] = f, math.sqrt(projected @ projected), k + 1, perf_counter() - start
        X[k] = x
        if k == n:
            break
        t = k + 1
        m = m + (1 - b1) * (g - m)
        v = b2 * v + (1 - b2) * (g * g)
        denom = np.sqrt(v) / math.sqrt(1 - b2**t) + eps
        x = np.clip(x - lr / (1 - b1**t) * (m / denom), lower, upper)
    return perf_counter() - start


def figure_loop() -> None:
    from objectives import shifted_quadratic, sin_cos
    from runner.loop import minimize
    from runner.optimizers import adam, gd

    print("2. loop overhead: runner.loop.minimize vs a bare numpy loop, trace recorded in both", flush=True)
    cases = [
        ("gd, shifted_quadratic", shifted_quadratic(), lambda: gd(lr=0.1), lambda o, n: bare_gd(o, 0.1, n), 50_000),
        ("Adam, sin_cos 50-D", sin_cos(n=50), lambda: adam(lr=0.01), lambda o, n: bare_adam(o, 0.01, n), 20_000),
    ]
    for name, objective, optimizer, bare, n in cases:
        # Each lambda is called within its own iteration, so binding the loop variables late is safe.
        t_runner = best(lambda: minimize(objective, optimizer(), max_iter=n, tol=0).wall_time_s, 5) / n  # noqa: B023
        t_bare = best(lambda: bare(objective, n), 5) / n  # noqa: B023
        report("2", f"{name}: runner per iteration", f"{t_runner * 1e6:.2f} us")
        report("2", f"{name}: bare loop per iteration", f"{t_bare * 1e6:.2f} us")
        report("2", f"RATIO {name}: runner / bare", f"{t_runner / t_bare:.2f}x  (target <= 1.2x)")


# ----------------------------------------------------------------------------- 3. torch


def figure_torch() -> None:
    print("3. torch.optim: gradient + Adam step on sin_cos 50-D", flush=True)
    try:
        import torch
    except ImportError:
        report(
            "3",
            "torch.optim.Adam + autograd",
            "skipped: torch does not import here (run with /tmp/torch-venv/bin/python benchmarks/run.py --only 3)",
        )
        return
    from objectives import sin_cos
    from runner.loop import minimize
    from runner.optimizers import adam

    torch.set_num_threads(1)
    objective, n, lr = sin_cos(n=50), 20_000, 0.01
    lower, upper = objective.lower, objective.upper

    def runner_steps() -> float:
        opt = adam(lr=lr)
        x = np.array(objective.x0)
        state = opt.init(x)
        value_and_grad = objective.value_and_grad
        start = perf_counter()
        for _ in range(n):
            _, g = value_and_grad(x)
            x, state = opt.update(g, state, x)
            x = np.clip(x, lower, upper)
        return perf_counter() - start

    index = torch.arange(1, 51, dtype=torch.float64)
    upper_t = torch.tensor(upper)

    def torch_steps() -> float:
        x = torch.tensor(objective.x0, requires_grad=True)
        opt = torch.optim.Adam([x], lr=lr)
        start = perf_counter()
        for _ in range(n):
            opt.zero_grad()
            s, c = torch.sin(x), torch.cos(x)
            f = (0.1 * (x - index) ** 2 + s * torch.roll(c, -1) + torch.exp(-x * x)).sum()
            f.backward()
            opt.step()
            with torch.no_grad():
                x.clamp_(max=upper_t)
        return perf_counter() - start

    t_runner = best(runner_steps, 5) / n
    t_loop = best(lambda: minimize(objective, adam(lr=lr), max_iter=n, tol=0).wall_time_s, 5) / n
    t_torch = best(torch_steps, 5) / n
    report(
        "3",
        f"runner: value_and_grad + adam update + projection (torch {torch.__version__})",
        f"{t_runner * 1e6:.2f} us",
    )
    report("3", "runner: runner.loop.minimize per iteration (with trace)", f"{t_loop * 1e6:.2f} us")
    report("3", "torch: zero_grad + forward + backward + Adam step + clamp", f"{t_torch * 1e6:.2f} us")
    report("3", "RATIO torch / runner step", f"{t_torch / t_runner:.2f}x")
    report("3", "RATIO torch / runner.loop.minimize", f"{t_torch / t_loop:.2f}x")


# ----------------------------------------------------------------------------- 4. loading


def figure_load(sweep_dir: Path | None, root: Path) -> None:
    import runner
    from runner.store import PARTS_DIR

    print("4. loading a 1,000-run sweep (1M trace rows)", flush=True)
    if sweep_dir is None or not (sweep_dir / "traces.parquet").is_file():
        sweep_dir = root / "batched1000"
        sweep("batched", LRS, _fresh(sweep_dir))
    t_load = best(lambda: _timed(runner.load, sweep_dir))
    t_runs = best(lambda: _timed(runner.load_runs, sweep_dir))
    rows_n = len(runner.load(sweep_dir))
    report("4", f"runner.load, traces.parquet ({rows_n:,} rows)", f"{seconds(t_load)}  (target <= 1 s)")
    report("4", "runner.load_runs, runs.parquet (1,000 rows)", seconds(t_runs))
    parts_only = _fresh(root / "parts_only")
    shutil.copytree(sweep_dir / PARTS_DIR, parts_only / PARTS_DIR)
    t_parts = best(lambda: _timed(runner.load, parts_only))
    report("4", "runner.load, no traces.parquet yet: from parts/ (batched layout)", seconds(t_parts))

    from runner.run import run

    per_job = _fresh(root / "per_job1000")
    base = {
        "objective": {"_target_": "objectives.shifted_quadratic", "a": 2.0, "b": -3.0, "x0": None},
        "optimizer": {
            "_target_": "runner.optimizers.momentum",
            "lr": 0.1,
            "momentum": 0.9,
            "dampening": 0.0,
            "weight_decay": 0.0,
        },
        "lr": 0.1,
        "max_iter": 1000,
        "tol": 0.0,
        "grad_tol": 0.0,
        "seed": 0,
        "trace": {"x": True},
    }
    for lr in LRS:
        for m in MOMENTA:
            cfg = {**base, "lr": lr, "optimizer": {**base["optimizer"], "lr": lr, "momentum": m}}
            run(cfg, per_job / f"lr={lr}" / f"optimizer.momentum={m}")
    t_jobs = _timed(runner.load, per_job)
    report("4", "runner.load, no traces.parquet yet: from 1,000 job folders", seconds(t_jobs))


def _timed(fn, *args) -> float:
    start = perf_counter()
    fn(*args)
    return perf_counter() - start


# ----------------------------------------------------------------------------- 5. joblib


def figure_joblib(root: Path) -> None:
    print("5. parallel launcher: joblib (2 workers) vs basic, 4 CPU-bound jobs", flush=True)
    try:
        import hydra_plugins.hydra_joblib_launcher  # noqa: F401
    except ImportError:
        report("5", "hydra-joblib-launcher", "skipped: not installed (pip install hydra-joblib-launcher)")
        return
    jobs = [
        "objective=sin_cos",
        "optimizer=adam",
        "lr=0.01",
        "max_iter=100000",
        "tol=0",
        "trace.x=false",
        "seed=0,1,2,3",
    ]

    def launch(launcher: str, *extra: str) -> float:
        out = _fresh(root / f"cpu_{launcher}")
        return shell(
            ["-m", "runner", "-m", f"hydra/launcher={launcher}", *jobs, f"hydra.sweep.dir={out}", *extra],
            figures=False,
            cwd=root,
        )

    t_basic = best(lambda: launch("basic"), 2)
    t_joblib = best(lambda: launch("joblib", "hydra.launcher.n_jobs=2"), 2)
    report("5", f"basic launcher, 4 jobs ({os.cpu_count()} cores)", seconds(t_basic))
    report("5", "joblib launcher, n_jobs=2, 4 jobs", seconds(t_joblib))
    report("5", "RATIO basic / joblib (speedup)", f"{t_basic / t_joblib:.2f}x")


# ----------------------------------------------------------------------------- 6. scaling


def figure_scaling(root: Path) -> None:
    """The lr x momentum grid at 1,000 and 10,000 configs (1,000 iterations each), batched, no figures:
    time and peak memory, best of two. (100,000 configs with ``trace.schedule=log``: ``benchmarks/`` of trace
    sampling.)"""
    print("6. scaling: the batched grid at 1,000 and 10,000 configs, time and peak memory", flush=True)
    for n_lrs in (40, 400):
        lrs = [round(2.0 / n_lrs * (i + 1), 6) for i in range(n_lrs)]
        out = root / f"scaling{n_lrs}"
        runs = [shell_memory(sweep_args("batched", lrs, _fresh(out)), figures=False, cwd=root) for _ in range(2)]
        t, peak = min(r[0] for r in runs), min(r[1] for r in runs)
        rows_n = n_lrs * len(MOMENTA) * 1001
        report("6", f"{n_lrs * len(MOMENTA):,} configs ({rows_n:,} trace rows)", f"{seconds(t)}, {peak:.0f} MB")
        _fresh(out)


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="1,2,3,4,5,6", help="comma-separated figures to run")
    parser.add_argument("--keep", action="store_true", help="keep the output folder")
    args = parser.parse_args()
    figures = {int(f) for f in args.only.split(",")}
    import numpy

    print(
        f"python {platform.python_version()}, numpy {numpy.__version__}, {os.cpu_count()} cores, "
        f"{platform.machine()}, {time.strftime('%Y-%m-%d %H:%M')}",
        flush=True,
    )
    root = Path(tempfile.mkdtemp(prefix="runner-bench-"))
    try:
        sweep_dir = figure_sweep(root) if 1 in figures else None
        if 2 in figures:
            figure_loop()
        if 3 in figures:
            figure_torch()
        if 4 in figures:
            figure_load(sweep_dir, root)
        if 5 in figures:
            figure_joblib(root)
        if 6 in figures:
            figure_scaling(root)
    finally:
        if args.keep:
            print(f"outputs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print("\nfigure | measurement | value")
    for row in rows:
        print(" | ".join(row))


if __name__ == "__main__":
    main()
