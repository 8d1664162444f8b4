"""Shared core: clocks, virtual time, simulated network, load, random streams, statistics, verdicts.

Every chapter stands on these and nothing here imports another part of the workbook.
"""

from workbook.core.clock import BoundLoopClock, Clock, LoopClock, ManualClock, WallClock
from workbook.core.errors import ConfigError, ParameterError, WorkbookError
from workbook.core.load import open_loop
from workbook.core.resources import DataNotFound, data_path, data_root
from workbook.core.seeds import derive_seed, stream
from workbook.core.stats import quantile, quantiles
from workbook.core.verdict import Check, Verdict
from workbook.core.virtual_time import VirtualTimeDeadlock, VirtualTimeLoop, run_virtual

__all__ = [
    "BoundLoopClock", "Check", "Clock", "ConfigError", "DataNotFound", "LoopClock", "ManualClock", "ParameterError", "Verdict", "VirtualTimeDeadlock",
    "VirtualTimeLoop", "WallClock", "WorkbookError", "data_path", "data_root", "derive_seed", "open_loop", "quantile", "quantiles",
    "run_virtual", "stream",
]
