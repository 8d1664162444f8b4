"""Sagas: a business transaction across services as local steps with compensations.

``orchestrator`` (orchestrated sagas with a durable log, retries and timeouts per step),
``choreography`` (the same flow as services reacting to events on the broker),
``order_flow`` (the shop's order saga: participants, fault plans and an atomicity check),
``naive`` (the source article's orchestrator, kept to show its defect).
"""

from workbook.sagas.orchestrator import (DuplicateSaga, Orchestrator, OrchestratorCrash, SagaDefinition, SagaLog, Step,
                                         StepRejected, StepRetry)

__all__ = ["DuplicateSaga", "Orchestrator", "OrchestratorCrash", "SagaDefinition", "SagaLog", "Step", "StepRejected",
           "StepRetry"]
