"""Compatibility only: the names ``runner/plot.py`` and its tests import from here until the figures
package replaces it, then this module goes. The sweep's dataset is :mod:`runner.tables`, its file
names :mod:`runner.store`."""

from runner.store import FIGURES_DIR
from runner.tables import load, load_runs, write_tables

__all__ = ["FIGURES_DIR", "load", "load_runs", "write_tables"]
