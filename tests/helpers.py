"""What several test files share: the project's command line, run in a fresh process as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_module(module: str, *args: str, cwd: Path, path=(), timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m <module> <args>`` in ``cwd``, the repository (and ``path``) importable; any exit code returns."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *map(str, path)])}
    command = [sys.executable, "-m", module, *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def sweep_watching_pandas(sweep_dir: Path, *overrides: str, then: str = "") -> subprocess.CompletedProcess:
    """A batched sweep of two momentum runs into ``sweep_dir``, run as ``python -m runner`` runs it, in a fresh
    process with only the repository importable, recording the stack at each import of pandas. The process
    prints ``pandas imports: N`` and, when N > 0, the functions on the stack at the first; then runs the
    Python code ``then``. Any exit code returns."""
    script = f"""
import sys
import traceback

pandas_imports = []  # the functions on the stack at each import of pandas


class WatchPandas:
    def find_spec(self, name, path=None, target=None):
        if name == "pandas":
            pandas_imports.append([frame.name for frame in traceback.extract_stack()])


sys.meta_path.insert(0, WatchPandas())
sys.argv = ["runner", "-m", "hydra/launcher=batched", "lr=0.1,0.2", "optimizer=momentum", "max_iter=5",
            "hydra.sweep.dir={sweep_dir}", *{list(overrides)!r}]
from runner.cli import main  # what python -m runner runs

try:
    main()
except SystemExit as err:
    assert not err.code, err.code
print("pandas imports:", len(pandas_imports), *pandas_imports[:1])
{then}
"""
    env = {"PYTHONPATH": str(REPO), "PATH": ""}
    return subprocess.run(
        [sys.executable, "-c", script], cwd=sweep_dir.parent, env=env, capture_output=True, text=True, timeout=120
    )
