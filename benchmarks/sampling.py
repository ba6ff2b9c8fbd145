"""Trace sampling at scale: ``python benchmarks/sampling.py [--configs 100000] [--only 1,2]``.

Not a test (CI does not run it); the numbers depend on the machine and its load.

1. A 1,000-config grid (sin_cos 50-D, Adam, lr x 1,000 values, 1,000 iterations, tol=0) from
   the shell with ``hydra/launcher=batched``, every iteration against ``trace.schedule=log``
   (100 points): trace rows, bytes on disk, peak memory (the process's max RSS) and wall
   time, side by side with their ratios.
2. The same grid at ``--configs`` configs (default 100,000: lr x 1,000 values, optimizer.eps x
   100) with ``trace.schedule=log``: wall time, peak memory (must stay under 4 GB), rows and
   size on disk, and what every iteration would have written (rows x the bytes per row of 1).

Run without the figures (``hydra.callbacks.sweep_end.figures=false``); outputs go to a
temporary folder, removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from time import perf_counter

import pyarrow.parquet as pq
from _env import child_environment

REPO = Path(__file__).resolve().parent.parent
GRID = [
    "objective=sin_cos",
    "optimizer=adam",
    "tol=0",
    "max_iter=1000",
    "hydra.callbacks.sweep_end.figures=false",
    "hydra.callbacks.sweep_end.report=false",
]


def lrs(n: int) -> str:
    return ",".join(f"{1e-4 * (i + 1):.4f}" for i in range(n))


def epsilons(n: int) -> str:
    return ",".join(f"{1e-8 * (i + 1):.2e}" for i in range(n))


def sweep(out: Path, *extra: str) -> tuple[float, int]:
    """Wall time and peak RSS (bytes) of one batched sweep into ``out``, run from the shell."""
    env = child_environment()
    command = [sys.executable, "-m", "runner", "-m", "hydra/launcher=batched", *GRID, *extra, f"hydra.sweep.dir={out}"]
    start = perf_counter()
    child = subprocess.Popen(command, cwd=out.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = perf_counter() - start
    stderr = child.stderr.read().decode()
    child.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"sweep into {out} failed:\n{stderr[-2000:]}")
    return elapsed, usage.ru_maxrss * 1024  # ru_maxrss is KiB on Linux


def rows_and_bytes(sweep_dir: Path) -> tuple[int, int]:
    """Trace rows in the chunk files (their footers), and bytes of every file below the folder."""
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in (sweep_dir / "parts").glob("*.traces.parquet"))
    size = sum(p.stat().st_size for p in sweep_dir.rglob("*") if p.is_file())
    return rows, size


def mb(n: float) -> str:
    return f"{n / 2**20:,.0f} MB" if n < 2**30 else f"{n / 2**30:,.2f} GB"


def line(what: str, value: str) -> None:
    print(f"  {what:<58} {value}", flush=True)


def figure_grid(root: Path) -> float:
    """1: every iteration against log sampling; returns the bytes per row of every iteration."""
    print("1. 1,000 configs x 1,000 iterations, sin_cos 50-D Adam, batched: every row against trace.schedule=log")
    results = {}
    for name, extra in (("all", ()), ("log", ("trace.schedule=log",))):
        out = root / f"grid-{name}"
        elapsed, peak = sweep(out, f"lr={lrs(1000)}", *extra)
        rows, size = rows_and_bytes(out)
        results[name] = (elapsed, peak, rows, size)
        line(f"{name}: rows, on disk, peak RSS, wall", f"{rows:,}  {mb(size)}  {mb(peak)}  {elapsed:.1f} s")
    (t_all, m_all, r_all, b_all), (t_log, m_log, r_log, b_log) = results["all"], results["log"]
    line("every row / log: rows", f"{r_all / r_log:.1f}x")
    line("every row / log: bytes on disk", f"{b_all / b_log:.1f}x")
    line("every row / log: peak memory", f"{m_all / m_log:.1f}x")
    line("every row / log: wall time", f"{t_all / t_log:.2f}x")
    return b_all / r_all


def figure_scale(root: Path, configs: int, bytes_per_row: float | None) -> None:
    n_eps = max(1, configs // 1000)
    n_lr = configs // n_eps
    print(f"2. {n_lr * n_eps:,} configs x 1,000 iterations, sin_cos 50-D Adam, batched, trace.schedule=log")
    out = root / "scale"
    elapsed, peak = sweep(out, f"lr={lrs(n_lr)}", f"optimizer.eps={epsilons(n_eps)}", "trace.schedule=log")
    rows, size = rows_and_bytes(out)
    line("wall time", f"{elapsed:.1f} s ({elapsed / (n_lr * n_eps) * 1e3:.2f} ms a config)")
    line("peak RSS (limit 4 GB)", f"{mb(peak)}  {'under' if peak < 4 * 2**30 else 'OVER'} 4 GB")
    line("trace rows, size on disk", f"{rows:,}  {mb(size)}")
    if bytes_per_row is not None:
        full = n_lr * n_eps * 1001 * bytes_per_row
        line("every iteration would write (bytes a row of figure 1)", f"{mb(full)} ({full / size:.0f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=100_000)
    parser.add_argument("--only", default="1,2")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    only = {int(f) for f in args.only.split(",")}
    root = Path(tempfile.mkdtemp(prefix="runner-sampling-"))
    try:
        per_row = figure_grid(root) if 1 in only else None
        if 2 in only:
            figure_scale(root, args.configs, per_row)
    finally:
        if args.keep:
            print(f"outputs: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
