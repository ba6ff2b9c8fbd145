"""User data for the data objectives: one feature matrix X and one target vector y.

Formats (chosen by the file's extension):

- ``.npz``: the target array under the key ``target`` (default ``"y"``), 1-D
  of length m, and exactly one other array, 2-D of shape (m, n): the matrix.
- ``.csv`` (with a header row) and ``.parquet``: one column named ``target``;
  every other column is a feature, in file order. All columns numeric.

Relative paths are taken relative to the current working directory (our Hydra
setup does not change directory). Every problem is reported as a one-line
``ConfigError`` on ``objective.data``, or on ``objective.target`` when the
target column or array is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from runner.errors import ConfigError

DATA_KEY = "objective.data"
TARGET_KEY = "objective.target"
FORMATS = (".npz", ".csv", ".parquet")


def load_xy(path, target: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """Read ``(X, y)`` from ``path``: X float64 (m, n) with m, n >= 1, y float64 (m,).

    All values must be finite. Raises ``ConfigError`` naming the key, the
    value and what is allowed.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(DATA_KEY, path, "a path to a .npz, .csv or .parquet file")
    if not isinstance(target, str) or not target:
        raise ConfigError(TARGET_KEY, target, "a column or array name (a non-empty string)")
    shown = os.fspath(path)
    file = Path(path).expanduser()
    if not file.is_absolute():
        file = Path.cwd() / file
    suffix = file.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(DATA_KEY, shown, "a file ending in .npz, .csv or .parquet")
    if not file.is_file():
        raise ConfigError(DATA_KEY, shown, f"an existing {suffix} file (no file at {file})")
    if suffix == ".npz":
        X, y, x_name, y_name = _read_npz(file, shown, target)
    else:
        X, y, x_name, y_name = _read_table(file, shown, target, suffix)
    if X.shape[0] < 1:
        raise ConfigError(DATA_KEY, shown, "at least 1 row of data (the file has 0)")
    if X.shape[1] < 1:
        raise ConfigError(DATA_KEY, shown, f"at least 1 feature besides the target {target!r}")
    if y.shape[0] != X.shape[0]:
        raise ConfigError(
            DATA_KEY, shown, f"as many targets as rows (target has {y.shape[0]}, matrix has {X.shape[0]})"
        )
    _check_finite(shown, X, x_name)
    _check_finite(shown, y[:, None], [y_name])
    return X, y


def _read_npz(file: Path, shown: str, target: str):
    try:
        archive = np.load(file, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):  # a bare .npy saved under a .npz name
            raise ValueError("a single array, not an archive of named arrays")
        with archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as err:  # numpy raises OSError, ValueError, BadZipFile, EOFError, ... here
        raise ConfigError(DATA_KEY, shown, f"a readable .npz file ({_first_line(err)})") from None
    if target not in arrays:
        raise ConfigError(TARGET_KEY, target, f"one of the arrays in {file.name}: {', '.join(arrays) or 'none'}")
    others = [key for key in arrays if key != target]
    if len(others) != 1:
        raise ConfigError(
            DATA_KEY,
            shown,
            f"a .npz with the target {target!r} and exactly one other array, the matrix (found {len(others)}: "
            + ", ".join(others)
            + ")",
        )
    X, y = arrays[others[0]], arrays[target]
    if X.ndim != 2:
        raise ConfigError(DATA_KEY, shown, f"a 2-D matrix array (array {others[0]!r} has shape {X.shape})")
    if y.ndim != 1:
        raise ConfigError(DATA_KEY, shown, f"a 1-D target array (array {target!r} has shape {y.shape})")
    for key, array in ((others[0], X), (target, y)):
        if array.dtype.kind not in "biuf":
            raise ConfigError(DATA_KEY, shown, f"numeric arrays (array {key!r} has dtype {array.dtype})")
    columns = [f"{others[0]}[:, {j}]" for j in range(X.shape[1])]
    return X.astype(float), y.astype(float), columns, target


def _read_table(file: Path, shown: str, target: str, suffix: str):
    import pandas as pd  # here, not at the top: every sweep imports the objectives, few read a table (0.3 s)

    try:
        frame = pd.read_csv(file) if suffix == ".csv" else pd.read_parquet(file)
    except Exception as err:  # pandas/pyarrow raise a zoo of types (ParserError, ArrowInvalid, ...)
        raise ConfigError(DATA_KEY, shown, f"a readable {suffix} file ({_first_line(err)})") from None
    columns = [str(c) for c in frame.columns]
    if target not in columns:
        listed = ", ".join(columns[:20]) + (", ..." if len(columns) > 20 else "")
        raise ConfigError(TARGET_KEY, target, f"a column of {file.name}: {listed or 'none'}")
    frame.columns = columns
    if len(frame) == 0:  # before the dtype checks: a header-only csv reads as non-numeric columns
        raise ConfigError(DATA_KEY, shown, "at least 1 row of data (the file has 0)")
    for column in columns:
        dtype = frame[column].dtype
        if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_complex_dtype(dtype):
            raise ConfigError(DATA_KEY, shown, f"numeric columns only (column {column!r} has dtype {dtype})")
    features = [c for c in columns if c != target]
    X = frame[features].to_numpy(dtype=float) if features else np.empty((len(frame), 0))
    y = frame[target].to_numpy(dtype=float)
    return X, y, features, target


def _check_finite(shown: str, values: np.ndarray, names) -> None:
    bad = np.flatnonzero(~np.isfinite(values).all(axis=0))
    if bad.size:
        raise ConfigError(DATA_KEY, shown, f"finite values only ({names[bad[0]]!r} has NaN or inf)")


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    line = text[0] if text else ""
    line = f"{type(err).__name__}: {line}" if line else type(err).__name__
    return line if len(line) <= 120 else line[:117] + "..."


def minibatch_estimator(loss_and_grad, X: np.ndarray, y: np.ndarray):
    """The unbiased minibatch estimate built from a sum-over-samples loss.

    ``loss_and_grad(x, X_s, y_s)`` must return the loss summed over the given
    samples (X_s of shape (..., s, n)) and its gradient. The estimator takes
    ``x (..., dim)`` and ``idx (..., s)``, integer sample indices (each batch
    entry may have its own), and returns ``(m / s) * loss_and_grad(x, X[idx], y[idx])``:
    for idx drawn uniformly, its expectation is the full-data loss and gradient.
    Leading axes of x and idx broadcast against each other.
    """
    m = X.shape[0]

    def minibatch_value_and_grad(x, idx):
        idx = np.asarray(idx)
        f, g = loss_and_grad(np.asarray(x, dtype=float), X[idx], y[idx])
        scale = m / idx.shape[-1]
        return scale * f, scale * g

    return minibatch_value_and_grad
