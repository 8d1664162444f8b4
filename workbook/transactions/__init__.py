"""Distributed transactions: two-phase commit done right, shown blocking, beside the article's.

``two_phase`` (coordinator with a durable log, participants that lock and persist before
voting, presumed abort, timeouts, recovery), ``crash`` (named crash points and crash
plans), ``system`` (a 2PC system on the simulated network with crashes and restarts, and
the atomicity checker), ``naive`` (the article's 2PC: sleeps for votes, ignores failures).
"""

from workbook.transactions.crash import COORDINATOR_POINTS, PARTICIPANT_POINTS, CrashPlan, crash_points
from workbook.transactions.errors import Crash, TransactionError, UnknownTransaction
from workbook.transactions.naive import NaiveCoordinator, NaiveParticipant
from workbook.transactions.system import RunResult, TwoPhaseSystem, check_atomicity, run_transactions
from workbook.transactions.two_phase import Coordinator, Participant, check_work

__all__ = ["COORDINATOR_POINTS", "Coordinator", "Crash", "CrashPlan", "NaiveCoordinator", "NaiveParticipant",
           "PARTICIPANT_POINTS", "Participant", "RunResult", "TransactionError", "TwoPhaseSystem", "UnknownTransaction",
           "check_atomicity", "check_work", "crash_points", "run_transactions"]
