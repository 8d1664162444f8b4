"""Chapter 7: the service mesh: the article's Istio configuration validated, its
authorization policies evaluated over a grid of requests, and real mTLS between sidecars.

``experiments`` returns plain data for the notebook; ``exercise`` checks a fix of the
article's AuthorizationPolicies and returns a ``Verdict``.
"""

from workbook.labs.ch07_mesh.exercise import check_authorization_answer, model_answer, naive_answers
from workbook.labs.ch07_mesh.experiments import (
    CALLERS,
    TARGETS,
    admissions_by_rule,
    authorization_rows,
    compare_policies,
    intended,
    mtls_mode_matrix,
    request_grid,
    rotation_run,
    unintended_admissions,
    validation_rows,
)

__all__ = [
    "CALLERS", "TARGETS", "admissions_by_rule", "authorization_rows", "check_authorization_answer",
    "compare_policies", "intended", "model_answer", "mtls_mode_matrix", "naive_answers", "request_grid",
    "rotation_run", "unintended_admissions", "validation_rows",
]
