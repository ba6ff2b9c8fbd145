"""An objective for the engine tests (``tests/test_engines.py``), in a module of its own: each worker
process of a sweep imports it, and it imports nothing the worker does not need anyway."""

from __future__ import annotations

import dataclasses
import os
import time

from objectives.shifted_quadratic import shifted_quadratic


def fragile_quadratic(a: float = 2.0, b: float = -3.0, x0=None, poison: str = ""):
    """``objectives.shifted_quadratic``, whose evaluation kills its process (as a segfault or the
    out-of-memory killer would) while the file ``<poison>.<a>`` exists, and waits
    ``$RUNNER_TEST_DELAY_S`` seconds first (so that a sweep can be interrupted midway)."""
    objective = shifted_quadratic(a, b, x0)
    inner, delay = objective.value_and_grad, float(os.environ.get("RUNNER_TEST_DELAY_S", "0"))

    def value_and_grad(x):
        if poison and os.path.exists(f"{poison}.{a:g}"):
            os._exit(3)
        if delay:
            time.sleep(delay)
        return inner(x)

    return dataclasses.replace(objective, value_and_grad=value_and_grad)
