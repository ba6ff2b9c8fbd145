"""The reference point of figure 1: the same lr x momentum grid, hand-written in JAX/optax.

Heavy ball (optax.sgd with momentum, the torch convention, as runner's ``momentum``) on the
shifted quadratic from (8, 9), every config for ``--iterations`` updates, vmap over the
configs, jit over a lax.scan of the updates, float64. The trace (f and x per iteration
and config) comes back to numpy and is written to one parquet file, so that the script
does what the sweep does short of the runner's bookkeeping.

    /tmp/jax-venv/bin/python benchmarks/jax_grid.py --out /tmp/jax_trace.parquet
"""

from __future__ import annotations

import argparse

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

CENTER = jnp.array([2.0, -3.0])
SCALE = jnp.array([4.0, 3.0])


def f(x):
    u = (x - CENTER) / SCALE
    return jnp.sum(u * u)


def run_one(lr, momentum, iterations):
    opt = optax.sgd(lr, momentum=momentum)
    x0 = jnp.array([8.0, 9.0])

    def step(carry, _):
        x, state = carry
        value, g = jax.value_and_grad(f)(x)
        updates, state = opt.update(g, state, x)
        return (optax.apply_updates(x, updates), state), (value, x)

    _, (values, xs) = jax.lax.scan(step, (x0, opt.init(x0)), None, length=iterations + 1)
    return values, xs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lrs", type=int, default=40)
    parser.add_argument("--momenta", type=int, default=25)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    lr, momentum = np.meshgrid(0.05 * np.arange(1, args.lrs + 1), 0.04 * np.arange(args.momenta), indexing="ij")
    grid = jax.jit(jax.vmap(run_one, in_axes=(0, 0, None)), static_argnums=2)
    values, xs = grid(jnp.asarray(lr.ravel()), jnp.asarray(momentum.ravel()), args.iterations)
    values, xs = np.asarray(values), np.asarray(xs)  # (configs, iterations + 1), (configs, iterations + 1, 2)
    n_configs, rows = values.shape
    table = pa.table(
        {
            "config": np.repeat(np.arange(n_configs), rows),
            "iteration": np.tile(np.arange(rows), n_configs),
            "f": values.ravel(),
            "x_0": xs[..., 0].ravel(),
            "x_1": xs[..., 1].ravel(),
        }
    )
    pq.write_table(table, args.out)
    print(f"jax: {n_configs} configs x {rows} rows -> {args.out}")


if __name__ == "__main__":
    main()
