"""Chapter 7: the service mesh: the article's Istio configuration validated, its
authorization policies evaluated over a grid of requests, and real mTLS between sidecars.

* ``experiments``: validation rows, the authorization grid (article's vs corrected
  policies), the mTLS mode matrix and a rotation run (real time, 127.0.0.1);
* ``traffic_runs``: the corrected configuration executed by a sidecar in virtual time: the
  80/20 split, retries, outlier ejection, pool overflow, the progressive canary;
* ``graph_runs``: routing and timeout rows, faults measured, the shop's mixed traffic and
  its per-edge numbers (rate, error rate, p99), configuration changed while traffic runs;
* ``figures``: plotly figures and ipywidgets panels (authorization tester, mesh graph panel);
* ``exercise``: checks a fix of the article's AuthorizationPolicies and returns a ``Verdict``.
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
