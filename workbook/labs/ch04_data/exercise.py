"""The chapter's exercise: choose the quorums and the read path for five replicas.

The shop keeps a register (a customer's delivery address) on N = 5 replicas. Choose the
read quorum R, the write quorum W and the read path (``"plain"``: the newest of R
answers; ``"abd"``: quorum reads that write back what they return) so that

1. every history is linearizable: a read never misses a completed write, and two reads
   in real-time order never see new then old while a write is in flight;
2. the register keeps working with one replica down;
3. no operation waits for more replicas than that needs (lowest latency).

``check_quorum_choice({"n": 5, "r": R, "w": W, "mode": "plain" | "abd"})`` returns a
``Verdict``. It judges by running, never by reading the numbers: the two adversarial
runs of the chapter (slow links chosen so that the read quorum misses what it can miss),
``histories`` seeded random workloads checked by the linearizability checker, the same
with one replica down (every operation must reach its quorum), and the latency rule:
with R + W > N already guaranteed, R + W = N + 1 is the smallest quorum pair; the
median operation latencies are in ``numbers``.
"""

from __future__ import annotations

from workbook.consistency import Quorum
from workbook.core.errors import WorkbookError
from workbook.core.verdict import Verdict
from workbook.labs.ch04_data.quorums import new_then_old, random_histories, stale_read

SUBJECT = "quorum choice for N = 5"
N = 5
MODES = ("plain", "abd")


def _parse(answer) -> tuple[Quorum, str]:
    if not isinstance(answer, dict):
        raise TypeError(f"answer must be a dict {{'n': 5, 'r': ..., 'w': ..., 'mode': ...}}, got {answer!r}")
    missing = [k for k in ("n", "r", "w", "mode") if k not in answer]
    if missing:
        raise KeyError(f"answer is missing {', '.join(missing)}")
    if answer["n"] != N:
        raise ValueError(f"n must stay {N} (the shop has five replicas), got {answer['n']!r}")
    if answer["mode"] not in MODES:
        raise ValueError(f"mode must be 'plain' or 'abd', got {answer['mode']!r}")
    return Quorum(answer["n"], answer["r"], answer["w"]), answer["mode"]


def check_quorum_choice(answer, *, histories: int = 12, seed: int = 0) -> Verdict:
    try:
        quorum, mode = _parse(answer)
    except (WorkbookError, TypeError, KeyError, ValueError) as e:
        return Verdict.rejected(SUBJECT, f"{type(e).__name__}: {e}")
    stale = stale_read(quorum, mode)
    during = new_then_old(mode, quorum)
    healthy = random_histories(quorum, mode, histories=histories, seed=seed)
    if quorum.r < N and quorum.w < N:
        degraded = random_histories(quorum, mode, histories=histories, seed=seed, down=1)
        down_ok = degraded.unavailable == 0 and degraded.linearizable == histories
        down_detail = (f"{degraded.unavailable} operation(s) missed their quorum; "
                       f"{degraded.linearizable}/{histories} histories linearizable")
    else:
        down_ok, down_detail = False, f"R={quorum.r}, W={quorum.w}: a quorum of {N} cannot form with a replica down"
    minimal = quorum.r + quorum.w == N + 1
    checks = [
        ("a read after a completed write sees it", stale.verdict.passed,
         f"read returned {stale.reads[0]!r} after write(1) completed"),
        ("no new-then-old while a write is in flight", during.verdict.passed,
         f"reader a got {during.reads[0]!r}, then reader b got {during.reads[1]!r}"),
        ("random histories are linearizable", healthy.linearizable == histories,
         f"{healthy.linearizable}/{histories} linearizable" +
         (f"; first counterexample: {healthy.first_counterexample.splitlines()[-1].strip()}"
          if healthy.first_counterexample else "")),
        ("works with one replica down", down_ok, down_detail),
        ("quorums just overlap (R + W = N + 1): no larger than needed", minimal,
         f"R + W = {quorum.r + quorum.w}; median read {healthy.read_p50 * 1000:.1f} ms, write "
         f"{healthy.write_p50 * 1000:.1f} ms"),
    ]
    hint = ("plain quorum reads can return new then old while a write is in flight: a reader must write back "
            "what it returns; quorums must overlap (R + W > N) yet stay below N to survive a replica down")
    return Verdict.of(f"{SUBJECT}: R={quorum.r}, W={quorum.w}, {mode}", checks,
                      numbers={"read_p50_ms": round(healthy.read_p50 * 1000, 2),
                               "write_p50_ms": round(healthy.write_p50 * 1000, 2)}, hint=hint)
