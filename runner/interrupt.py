"""Exit codes of the command line, and SIGTERM taken as Ctrl-C: shared by the CLI and the batched launcher.

Plain Python (no Hydra), so that the launcher plugin uses them without importing
:mod:`runner.app`, whose ``@hydra.main`` would run at import.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager

EXIT_BAD_CONFIG = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


@contextmanager
def sigterm_as_interrupt():
    """Treat SIGTERM like Ctrl-C, so a killed run still saves its trace as ``interrupted``."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
