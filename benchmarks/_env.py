"""What every benchmark's timed command runs with."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def child_environment(**extra: str) -> dict[str, str]:
    """``os.environ`` for a timed command: this repository first on ``PYTHONPATH``, and Python's bytecode
    cache on, as a default install has it. A shell that sets ``PYTHONDONTWRITEBYTECODE`` (as some
    containers do) makes every command compile the project's modules again, about 1 s of a sweep's
    start-up on a 2-core machine, which no user of an installed package pays."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**env, **extra}
