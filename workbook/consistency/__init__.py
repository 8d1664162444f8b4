"""Consistency you can check: a replicated register with quorums and a linearizability checker.

``history`` (operations with invocation and completion times), ``linearizability``
(Wing-Gong search with memoisation; a verdict, and a counterexample when it says no),
``register`` (N replicas over the simulated network, R and W quorums, plain or ABD
reads with write-back), ``pbs`` (probability of a stale read against time since the write).
"""

from workbook.consistency.errors import ConsistencyError, QuorumUnavailable
from workbook.consistency.history import History, Operation
from workbook.consistency.linearizability import (Counterexample, SearchResult, check_linearizable,
                                                  linearizable_by_brute_force, search)
from workbook.consistency.pbs import stale_read_probability
from workbook.consistency.register import Quorum, RegisterClient, ReplicatedRegister

__all__ = ["ConsistencyError", "Counterexample", "History", "Operation", "Quorum", "QuorumUnavailable",
           "RegisterClient", "ReplicatedRegister", "SearchResult", "check_linearizable",
           "linearizable_by_brute_force", "search", "stale_read_probability"]
