"""The batched launcher's engines side by side: ``python benchmarks/engines.py``.

A grid of sin_cos 50-D with Adam, 1,000 iterations each (``tol=0``: every config runs them all),
traces written, from the shell with ``hydra/launcher=batched``: 10,000 configs (100 learning
rates x 100 weight decays) by default. Each engine runs the same command but for
``hydra.launcher.engine``; the runs of the engines are interleaved and repeated, and the
minimum of each is kept (the machine is shared: the minimum is the least disturbed run).

Printed per engine: the wall time of the whole command (end to end: start-up, composing the
jobs, the chunks, then ``runs.parquet`` and ``traces.parquet`` written by the parent, no
figures) and of its chunks alone (the launcher's ``batched: N of M runs in T s`` line), each with
its speed-up over ``engine=local``. Ray runs when this Python has it (``pip install -e '.[ray]'``),
fork and joblib with ``n_jobs`` processes (``--n-jobs``, default 2).

Options: ``--configs N`` (a square-ish grid of about N), ``--repeat R`` (3), ``--engines local,joblib``,
``--keep`` keeps the sweep folders (5 GB each at 10,000 configs). Not a test: CI does not run it.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from time import perf_counter

from _env import child_environment

REPO = Path(__file__).resolve().parent.parent
BATCHED = re.compile(r"batched: (\d+) of (\d+) runs in ([0-9.]+) s")


def grid(configs: int) -> tuple[list[float], list[float]]:
    """About ``configs`` (learning rate, weight decay) pairs: ``ceil(sqrt)`` rates by as many decays as fit."""
    n_lr = math.ceil(math.sqrt(configs))
    n_wd = math.ceil(configs / n_lr)
    lrs = [float(f"{1e-4 * 10 ** (3 * i / max(1, n_lr - 1)):.6g}") for i in range(n_lr)]  # 1e-4 .. 1e-1
    wds = [round(1e-4 * i, 6) for i in range(n_wd)]
    return lrs, wds


def run(engine: str, lrs: list[float], wds: list[float], out: Path, n_jobs: int) -> tuple[float, float, int]:
    """(end to end, the chunks, runs) of one sweep, in seconds."""
    shutil.rmtree(out, ignore_errors=True)
    args = [
        sys.executable,
        "-m",
        "runner",
        "-m",
        "hydra/launcher=batched",
        f"hydra.launcher.engine={engine}",
        f"hydra.launcher.n_jobs={n_jobs}",
        "objective=sin_cos",
        "optimizer=adam",
        "lr=" + ",".join(map(str, lrs)),
        "optimizer.weight_decay=" + ",".join(map(str, wds)),
        "max_iter=1000",
        "tol=0",
        "hydra.callbacks.sweep_end.figures=false",
        "hydra.callbacks.sweep_end.report=false",
        f"hydra.sweep.dir={out}",
    ]
    if engine == "ray":  # the chunks' tasks on as many cores as the other engines' processes
        args.append(f"+hydra.launcher.ray.init.num_cpus={n_jobs}")
    start = perf_counter()
    done = subprocess.run(args, cwd=out.parent, env=child_environment(), capture_output=True, text=True, check=False)
    elapsed = perf_counter() - start
    found = BATCHED.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"engine={engine}: exit {done.returncode}\n{done.stdout[-1000:]}\n{done.stderr[-3000:]}")
    return elapsed, float(found.group(3)), int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--engines", default="local,fork,joblib,ray")
    parser.add_argument("--keep", action="store_true")
    options = parser.parse_args()
    engines = [e for e in options.engines.split(",") if e != "ray" or importlib.util.find_spec("ray") is not None]
    if "ray" in options.engines.split(",") and "ray" not in engines:
        print("ray: not installed in this Python, skipped (pip install -e '.[ray]')", flush=True)
    lrs, wds = grid(options.configs)
    root = Path(tempfile.mkdtemp(prefix="runner-engines-"))
    print(
        f"{len(lrs) * len(wds):,} configs (sin_cos 50-D, Adam, 1,000 iterations, traces written), "
        f"{os.cpu_count()} cores, n_jobs={options.n_jobs}, {options.repeat} repeats, Python {sys.version.split()[0]}",
        flush=True,
    )
    times: dict[str, list[tuple[float, float]]] = {e: [] for e in engines}
    try:
        for repeat in range(options.repeat):
            for engine in engines:
                total, chunks, runs = run(engine, lrs, wds, root / f"{engine}-{repeat}", options.n_jobs)
                times[engine].append((total, chunks))
                line = f"{total:7.1f} s end to end, {chunks:7.1f} s the chunks ({runs:,} runs)"
                print(f"  {engine:<8} repeat {repeat + 1}: {line}", flush=True)
                if not options.keep:
                    shutil.rmtree(root / f"{engine}-{repeat}", ignore_errors=True)
    finally:
        if not options.keep:
            shutil.rmtree(root, ignore_errors=True)
    best = {e: (min(t for t, _ in ts), min(c for _, c in ts)) for e, ts in times.items()}
    local_total, local_chunks = best.get("local", (math.nan, math.nan))
    print(f"\n{'engine':<8} {'end to end (min)':>18} {'speed-up':>9} {'chunks (min)':>14} {'speed-up':>9}")
    for engine, (total, chunks) in best.items():
        print(f"{engine:<8} {total:16.1f} s {local_total / total:8.2f}x {chunks:12.1f} s {local_chunks / chunks:8.2f}x")
    if options.keep:
        print(f"kept: {root}")


if __name__ == "__main__":
    main()
