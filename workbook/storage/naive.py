"""The source article's in-memory repository and data synchroniser, kept to show their defects.

``NaiveRepository`` is a dict of dicts, as in the article:

* ``save`` writes ``id`` and timestamps **into the caller's dict**, and stores a *shallow*
  copy: nested lists and dicts (an order's ``items``) are shared with the caller, so the
  caller appending an item afterwards changes the "database".
* ``find_by_id`` returns the stored dict itself: a reader that edits what it read edits
  the store, with no save, no version, no check.
* ``update`` merges blindly: two writers who read the same record both win, the last
  one silently overwriting the first (a lost update; compare ``Repository``'s versions).

``NaiveSynchronizer`` copies changes from one service's repository to another's by rules
``(source, target, event_type, mapping, strong|eventual)``, as the article's does:

* after the loop that starts one task per matching rule it reads the loop variable
  ``rule`` to decide whether to wait: the *last* matching rule decides for all of them,
  so a strong rule followed by an eventual one is not waited for;
* an eventual sync runs in the background and any error in a rule (a mapping that raises,
  a missing target) is logged and swallowed: the record is silently not synchronised.
  ``errors`` counts what was swallowed, so a notebook can show it; nothing else would.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class NaiveRepository:
    """The article's ``InMemoryRepository`` (synchronous here; the defects are the same)."""

    def __init__(self, service: str = "service", *, clock: Callable[[], float] | None = None):
        self.service = service
        self.data: dict[str, dict] = {}
        self._ids = itertools.count(1)
        self._now = clock or (lambda: 0.0)

    def save(self, entity: dict[str, Any]) -> str:
        entity_id = entity.get("id") or f"{self.service}-{next(self._ids)}"
        entity["id"] = entity_id                   # defect: writes into the caller's dict
        entity["created_at"] = entity["updated_at"] = self._now()
        self.data[entity_id] = entity.copy()       # defect: shallow; nested objects stay shared
        return entity_id

    def find_by_id(self, entity_id: str) -> dict | None:
        return self.data.get(entity_id)            # defect: the stored dict itself

    def find_by_criteria(self, criteria: dict[str, Any]) -> list[dict]:
        return [e.copy() for e in self.data.values() if all(k in e and e[k] == v for k, v in criteria.items())]

    def update(self, entity_id: str, updates: dict[str, Any]) -> bool:
        if entity_id not in self.data:
            return False
        self.data[entity_id].update(updates)       # defect: blind merge, last writer wins
        self.data[entity_id]["updated_at"] = self._now()
        return True

    def delete(self, entity_id: str) -> bool:
        return self.data.pop(entity_id, None) is not None


class NaiveSynchronizer:
    """The article's ``DataSynchronizer``: rules from a source service to target repositories."""

    def __init__(self):
        self.rules: dict[str, dict] = {}
        self.repositories: dict[str, NaiveRepository] = {}
        self.errors = 0        # swallowed failures (the article only logs them)
        self.background: list[asyncio.Future] = []

    def register_repository(self, service: str, repository: NaiveRepository) -> None:
        self.repositories[service] = repository

    def add_sync_rule(self, source: str, target: str, event_type: str, mapping: Callable[[dict], dict],
                      consistency: str = "eventual") -> None:
        self.rules[f"{source}->{target}:{event_type}"] = {"source": source, "target": target,
                                                          "event_type": event_type, "mapping": mapping,
                                                          "consistency": consistency}

    async def sync_data_change(self, source: str, event_type: str, entity_id: str, data: dict) -> None:
        relevant = [rule for rule in self.rules.values()
                    if rule["source"] == source and rule["event_type"] == event_type]
        tasks = []
        for rule in relevant:
            tasks.append(asyncio.ensure_future(self._execute(rule, event_type, entity_id, data)))
        if tasks:
            if rule["consistency"] == "strong":    # defect: `rule` is whichever rule came last
                await asyncio.gather(*tasks)
            else:
                self.background.append(asyncio.ensure_future(asyncio.gather(*tasks, return_exceptions=True)))

    async def _execute(self, rule: dict, event_type: str, entity_id: str, data: dict) -> None:
        try:
            target = self.repositories.get(rule["target"])
            if target is None:
                log.error("target repository not found: %s", rule["target"])
                self.errors += 1
                return
            await asyncio.sleep(0)
            mapped = rule["mapping"](data)
            if event_type.endswith("Deleted"):
                target.delete(entity_id)
            elif target.find_by_id(entity_id):
                target.update(entity_id, mapped)
            else:
                mapped["id"] = entity_id
                target.save(mapped)
        except Exception as exc:                   # defect: swallowed; the record is simply not synced
            log.error("sync failed: %s", exc)
            self.errors += 1
