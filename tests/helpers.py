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
