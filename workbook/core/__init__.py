"""Shared core: clocks, virtual time, simulated network, real-time servers, checks."""

from workbook.core.clock import Clock, LoopClock, ManualClock, WallClock
from workbook.core.errors import ConfigError, ParameterError
from workbook.core.virtual_time import VirtualTimeDeadlock, VirtualTimeLoop, run_virtual

__all__ = [
    "Clock",
    "ConfigError",
    "LoopClock",
    "ManualClock",
    "ParameterError",
    "VirtualTimeDeadlock",
    "VirtualTimeLoop",
    "WallClock",
    "run_virtual",
]
