"""Work shared with a forked copy of this process: the figures drawn on two cores.

Matplotlib draws a figure in one thread (Python holds the lock the whole time), so a second core
helps only as a second process; forked, it starts with the tables already read and the modules
imported, where a fresh one would spend longer on imports than on a figure. The pieces of work
are taken one at a time by whichever process is free (the next byte of a pipe), so a long figure
does not leave the other core idle while a queue of short ones waits behind it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from runner.errors import picklable
from runner.figures._data import cores

Result = TypeVar("Result")


def can_fork() -> bool:
    """Whether sharing with a forked copy is safe and worth it: a POSIX fork, two cores or more, and no other
    thread in this process (a lock another thread holds at the fork would stay held in the copy)."""
    return hasattr(os, "fork") and cores() >= 2 and threading.active_count() == 1


def shared(keys: Sequence[Hashable], work: Callable[[Hashable], Result]) -> dict[Hashable, Result]:
    """``{key: work(key)}`` for every key, the calls shared between this process and a forked copy of it.

    The rule: each process takes the next key not yet taken when it is free, until none is left;
    the copy sends back each result it made (pickled, through a pipe) and ends. A key the copy took
    but sent nothing for (it died, or its result does not pickle) is worked here afterwards, so every
    key has its result whatever becomes of the copy. An exception ``work`` raises in the copy is
    raised here, once this process's share is done. Without :func:`can_fork` (or with one key), every
    call is made here, in order. ``work`` must not print: the copy's output is not this process's.
    """
    if len(keys) < 2 or len(keys) > 255 or not can_fork():
        return {key: work(key) for key in keys}
    tasks_read, tasks_write = os.pipe()
    os.write(tasks_write, bytes(range(len(keys))))  # one byte a key: a pipe hands each byte to one reader
    os.close(tasks_write)
    results_read, results_write = os.pipe()
    child = os.fork()
    if child == 0:  # the copy: its share, its results down the pipe, and out without this process's exit handlers
        os.close(results_read)
        _serve(keys, work, tasks_read, results_write)
    os.close(results_write)
    results: dict[Hashable, Result] = {}
    errors: list[BaseException] = []
    try:
        with os.fdopen(results_read, "rb") as copy:
            try:
                for k in _taken(tasks_read):
                    results[keys[k]] = work(keys[k])
            finally:
                os.close(tasks_read)
            errors = _received(copy, keys, results)
        os.waitpid(child, 0)
    except BaseException:  # Ctrl-C, or work raised here: the copy stops too, as Ctrl-C stops it
        _stop(child)
        raise
    for key in keys:  # what the copy took and did not send back
        if key not in results:
            results[key] = work(key)
    if errors:
        raise errors[0]
    return results


def _taken(tasks_read: int):
    """The keys' indices this process takes from the pipe, one at a time, until it is empty."""
    while index := os.read(tasks_read, 1):
        yield index[0]


def _serve(keys: Sequence[Hashable], work: Callable, tasks_read: int, results_write: int) -> None:
    """The copy's life: work the keys it takes, send each ``(index, result)`` or ``(index, None, error)``."""
    code = 0
    try:
        with os.fdopen(results_write, "wb") as out:
            for k in _taken(tasks_read):
                try:
                    sent = pickle.dumps((k, work(keys[k])))
                except Exception as err:  # raised here in the parent; a result that does not pickle is redone there
                    sent = pickle.dumps((k, None, picklable(err)))
                out.write(sent)
                out.flush()
    except BaseException:  # Ctrl-C, a closed pipe: what was not sent is redone by the parent
        code = 1
    finally:
        os._exit(code)


def _received(copy, keys: Sequence[Hashable], results: dict) -> list[BaseException]:
    """Read the copy's results into ``results`` until it closes the pipe (or a result is cut short);
    return the errors it sent."""
    errors = []
    while True:
        try:
            sent = pickle.load(copy)
        except (EOFError, pickle.UnpicklingError):  # the end, or a result cut short: the copy died writing it
            return errors
        except Exception:  # a result that does not rebuild here: its key is worked here again
            continue
        if len(sent) == 3:
            errors.append(sent[2])
            results.setdefault(keys[sent[0]], None)  # not redone: its error is raised
        else:
            results[keys[sent[0]]] = sent[1]


def _stop(child: int) -> None:
    """Stop the copy as Ctrl-C would (it removes the file it was writing), then for good if it lingers."""
    for sig, wait_s in ((signal.SIGINT, 2.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                if os.waitpid(child, os.WNOHANG)[0]:
                    return
            except ChildProcessError:  # reaped already
                return
            time.sleep(0.01)
