"""Chapter 0: a tour of the reference system ("the shop") and the tail at scale."""

from workbook.tour.architecture import Architecture, load_architecture
from workbook.tour.tail import FanoutResult, fanout_experiment, slow_share_theory, tail_distribution

__all__ = [
    "Architecture",
    "FanoutResult",
    "fanout_experiment",
    "load_architecture",
    "slow_share_theory",
    "tail_distribution",
]
