"""Loading a big sweep with fresh tables against with missing ones: ``python benchmarks/loading.py``.

Builds a sweep of ``--configs`` lr x momentum configs of 1,000 iterations each with the batched
launcher (1,000 trace rows a run: 20,000 configs make 20M rows), then measures, each in a fresh
interpreter, wall time and peak resident memory of ``runner.load_runs(sweep)`` and
``runner.load(sweep, columns=["run_id", "iteration", "f"])``: first with the sweep's tables as the
sweep wrote them (fresh), then with ``runs.parquet`` and ``traces.parquet`` deleted, so that both
rebuild from the chunk files (stale: a sweep still going, or killed). Prints the four pairs and
their ratios (target: memory within 2x, time within 3x). Not a test: the numbers depend on the
machine and its load.

Options: ``--configs N`` (default 20,000), ``--dir D`` reuses (or builds into) a sweep folder.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _env import child_environment

REPO = Path(__file__).resolve().parent.parent

# A child interpreter: the call, its wall time and its peak RSS (ru_maxrss, KiB on Linux).
CHILD = """
import resource, sys, time
import runner
path, what = sys.argv[1], sys.argv[2]
start = time.perf_counter()
df = runner.load_runs(path) if what == "load_runs" else runner.load(path, columns=["run_id", "iteration", "f"])
elapsed = time.perf_counter() - start
print(len(df), elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def env() -> dict:
    return child_environment()


def build(out: Path, configs: int) -> None:
    momenta = 100 if configs >= 100 else configs
    lrs = [round(1e-4 * (i + 1), 6) for i in range(configs // momenta)]
    args = [
        sys.executable,
        "-m",
        "runner",
        "-m",
        "hydra/launcher=batched",
        "optimizer=momentum",
        "tol=0",
        "max_iter=999",
        "trace.x=false",
        "hydra.callbacks.sweep_end.figures=false",
        "lr=" + ",".join(map(str, lrs)),
        "optimizer.momentum=" + ",".join(str(round(0.009 * i, 4)) for i in range(momenta)),
        f"hydra.sweep.dir={out}",
    ]
    done = subprocess.run(args, cwd=out.parent, env=env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"building the sweep: exit {done.returncode}\n{done.stderr[-2000:]}")


def measure(sweep: Path, what: str) -> tuple[int, float, float]:
    """``(rows, seconds, peak RSS in MB)`` of one call in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(sweep), what], env=env(), capture_output=True, text=True, check=True
    )
    rows, seconds, kib = done.stdout.split()
    return int(rows), float(seconds), int(kib) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=20_000)
    parser.add_argument("--dir", type=Path, default=None)
    options = parser.parse_args()
    root = None if options.dir else Path(tempfile.mkdtemp(prefix="runner-loading-"))
    sweep = options.dir.resolve() if options.dir else root / "sweep"
    if not (sweep / "parts").is_dir():
        sweep.parent.mkdir(parents=True, exist_ok=True)
        print(f"building {options.configs} configs x 1,000 iterations in {sweep} ...", flush=True)
        build(sweep, options.configs)
    saved = sweep.parent / f"{sweep.name}.tables"
    saved.mkdir(exist_ok=True)
    for name in ("runs.parquet", "traces.parquet"):
        if not (saved / name).is_file():
            shutil.copy2(sweep / name, saved / name)
    results = {}
    try:
        for state in ("fresh", "stale"):
            for name in ("runs.parquet", "traces.parquet"):
                if state == "fresh":
                    shutil.copy2(saved / name, sweep / name)  # copy2 keeps the time it was written: fresh
                else:
                    (sweep / name).unlink()
            for what in ("load_runs", "load(columns=[run_id, iteration, f])"):
                rows, seconds, mb = measure(sweep, "load_runs" if what == "load_runs" else "load")
                results[state, what] = seconds, mb
                print(f"  {state:<6} {what:<40} {rows:>11,} rows  {seconds:7.2f} s  {mb:8.0f} MB", flush=True)
        for what in ("load_runs", "load(columns=[run_id, iteration, f])"):
            (t_fresh, m_fresh), (t_stale, m_stale) = results["fresh", what], results["stale", what]
            print(
                f"  RATIO stale / fresh {what:<40} time {t_stale / t_fresh:5.2f}x (target <= 3x)  "
                f"memory {m_stale / m_fresh:5.2f}x (target <= 2x)"
            )
    finally:
        for name in ("runs.parquet", "traces.parquet"):
            if not (sweep / name).is_file():
                shutil.copy2(saved / name, sweep / name)
        if root is not None:
            shutil.rmtree(root)


if __name__ == "__main__":
    main()
