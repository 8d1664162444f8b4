"""The notebook's three-member etcd demo: the same outcomes on every run, and no process left behind."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from tests.fixtures import missing_service
from workbook.core.etcd_server import ETCD_HINT
from workbook.labs.ch05_discovery.cluster_demo import quorum_demo, step_lines

pytestmark = [pytest.mark.etcd, pytest.mark.timeout(120)]


def test_two_of_three_commit_one_of_three_refuses_writes_and_the_cache_still_answers():
    if shutil.which("etcd") is None:
        missing_service(f"etcd not found ({ETCD_HINT})")
    result = asyncio.run(asyncio.wait_for(quorum_demo(), 90))
    assert result["available"] and result["processes_started_left_running"] == 0
    writes = [s["write"] for s in result["steps"]]
    assert writes == ["committed", "committed", "NoQuorum", "committed", "committed"]
    down = result["steps"][2]
    assert down["linearizable_read"] == "NoQuorum" and down["serializable_read"] == "4 instances"
    assert down["resolver_cart"] == "cart-0, cart-1, cart-2, cart-3" and not down["resolver_connected"]
    assert result["steps"][3]["resolver_connected"] and result["steps"][3]["resolver_cart"].endswith("cart-4")
    assert result["steps"][4]["registered_cart"] == 6
    lines = step_lines(result)
    assert len(lines) == 5 and "127.0.0.1" not in "".join(lines)
