"""Chapter 3's experiments, one module per experiment, gathered here for the notebook.

* ``delivery``: the crash experiment (``crash_experiment``, ``compare_modes``): what each
  delivery guarantee loses or duplicates when consumers die and restart as new processes;
* ``ordering``: per-key order with and without keys; lag under a burst against the number
  of consumers (queue-based load leveling);
* ``producer``: dual write against the transactional outbox;
* ``article_defects``: the source article's broker, live.

Every function is deterministic for a given seed (independent random streams from
``workbook.core.seeds``) and returns plain numbers; ``figures`` draws them and
``exercise`` holds the checker.
"""

from workbook.labs.ch03_async.delivery import (EXPERIMENT_CONFIG, CrashResult, LedgerUnavailable, ProcessConnection,
                                               compare_modes, crash_experiment, crash_run)
from workbook.labs.ch03_async.ordering import (LagResult, OrderingResult, lag_experiment, lag_run, ordering_experiment,
                                               ordering_run)
from workbook.labs.ch03_async.producer import OutboxResult, outbox_experiment
from workbook.labs.ch03_async.article_defects import naive_fanout_demo, naive_modes_demo, partition_across_processes

__all__ = ["EXPERIMENT_CONFIG", "CrashResult", "LagResult", "LedgerUnavailable", "OrderingResult", "OutboxResult",
           "ProcessConnection", "compare_modes", "crash_experiment", "crash_run", "lag_experiment", "lag_run",
           "naive_fanout_demo", "naive_modes_demo", "ordering_experiment", "ordering_run", "outbox_experiment",
           "partition_across_processes"]
