"""Errors a user can act on: one line naming the key, the bad value and what is allowed."""

from __future__ import annotations

import numbers
import pickle


class ConfigError(ValueError):
    """A bad config value.

    ``str(err)`` is the one line shown to the user, e.g.
    ``lr=-0.1: expected a number > 0``.
    """

    def __init__(self, key: str, value, allowed: str):
        self.key = key
        self.value = value
        self.allowed = allowed
        super().__init__(f"{key}={_show(value)}: expected {allowed}")

    def __reduce__(self):  # rebuilt from its three parts: a forked chunk or figure sends it back to the launcher
        return type(self), (self.key, self.value, self.allowed)


def _show(value) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())  # one line, even for a multi-line repr (2-D arrays)
    return text if len(text) <= 80 else text[:77] + "..."


def check_count(value, key: str, *, minimum: int = 1) -> int:
    """A whole count ``>= minimum`` (a size, a number of samples, a seed): an int or a numpy integer,
    never a bool nor a float such as 2.0. The one check every such key shares (an objective's sizes,
    ``optimizer.batch_size``, the batched launcher's ``chunk_size`` and ``max_chunk_bytes``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:  # np.int64 is Integral
        raise ConfigError(key, value, f"an integer >= {minimum}")
    return int(value)


def picklable(err: BaseException) -> BaseException:
    """``err`` when it pickles and rebuilds as it was raised, else a RuntimeError naming its type and message:
    what a forked process sends back of an error it met (the figures drawn on two cores, ``engine=fork``)."""
    try:
        rebuilt = pickle.loads(pickle.dumps(err))
        if type(rebuilt) is type(err) and str(rebuilt) == str(err):
            return err
    except Exception:
        pass
    return RuntimeError(f"{type(err).__name__}: {err}")
