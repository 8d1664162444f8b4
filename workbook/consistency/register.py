"""A replicated register over the simulated network: N replicas, read quorum R, write quorum W.

Each replica ``<name>-<i>`` is a service on a ``SimNetwork`` holding one timestamped
value; it keeps whichever ``(timestamp, value)`` is newest (last writer wins by
timestamp). A client sends every operation to **all** N replicas at once and returns as
soon as the quorum has answered; the other messages are still in flight and land later.

* ``write(v)``: stamp the value, send it to all N, return after W acknowledgements.
  In ``"plain"`` mode the stamp is ``(client clock, client)``, as Cassandra does; in
  ``"abd"`` mode the client first asks a quorum for the newest stamp and uses the next
  one (Attiya, Bar-Noy and Dolev's two-phase write, correct with several writers).
* ``read()``: ask all N, take the newest of the first R answers. In ``"abd"`` mode the
  reader then **writes back** what it read to W replicas before returning, so no later
  read can see an older value: quorum reads with write-back are linearizable
  (with R + W > N), where quorum reads alone are not while a write is in flight.

``Quorum(n, r, w)`` checks its numbers (each in 1..n, naming the field). With R + W <= N
a read quorum may miss the last write entirely (stale reads). Every operation is recorded
in ``register.history`` (``workbook.consistency.history``) for the linearizability
checker; an operation that does not reach its quorum within ``timeout`` raises
``QuorumUnavailable`` and stays pending in the history.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from workbook.consistency.errors import QuorumUnavailable
from workbook.consistency.history import History
from workbook.core.errors import ParameterError
from workbook.core.params import check_choice, check_int, check_number
from workbook.core.simnet import Request, SimNetwork

MODES = ("plain", "abd")


@dataclass(frozen=True)
class Quorum:
    n: int
    r: int
    w: int

    def __post_init__(self):
        check_int("n", self.n, minimum=1)
        check_int("r", self.r, minimum=1, maximum=self.n)
        check_int("w", self.w, minimum=1, maximum=self.n)

    @property
    def overlapping(self) -> bool:
        """R + W > N: every read quorum meets every write quorum."""
        return self.r + self.w > self.n

    def __str__(self) -> str:
        return f"N={self.n}, R={self.r}, W={self.w}"


class ReplicatedRegister:
    """N replica services on ``net`` and the client logic that reads and writes them."""

    def __init__(self, net: SimNetwork, quorum: Quorum, *, name: str = "replica", mode: str = "plain",
                 initial: Any = None, timeout: float = 1.0):
        if not isinstance(net, SimNetwork):
            raise ParameterError("net", net, "a SimNetwork")
        if not isinstance(quorum, Quorum):
            raise ParameterError("quorum", quorum, "a Quorum(n, r, w)")
        self.net, self.quorum, self.initial = net, quorum, initial
        self.mode = check_choice("mode", mode, MODES)
        self.timeout = check_number("timeout", timeout, minimum=0, min_exclusive=True)
        self.replicas = [f"{name}-{i}" for i in range(quorum.n)]
        self.stored: dict[str, tuple[tuple, Any]] = {r: ((0, ""), initial) for r in self.replicas}
        self.history = History()
        self.messages = 0
        for r in self.replicas:
            net.add_service(r, self._handler(r))

    def client(self, name: str) -> RegisterClient:
        if name not in self.net.services:
            self.net.add_service(name)
        return RegisterClient(self, name)

    def _handler(self, replica: str):
        async def handle(request: Request):
            body = request.body
            if body["op"] == "put":
                stamp = tuple(body["stamp"])
                if stamp > self.stored[replica][0]:
                    self.stored[replica] = (stamp, body["value"])
                return {"ok": True}
            stamp, value = self.stored[replica]
            return {"stamp": stamp, "value": value}
        return handle

    async def _broadcast(self, src: str, body: dict, needed: int, what: str) -> list[dict]:
        """Send to every replica; return the first ``needed`` answers (the rest still land later)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()
        answers: list[dict] = []

        async def one(replica: str):
            try:
                resp = await self.net.call(src, replica, Request("POST", "/register", body=dict(body)),
                                           timeout=self.timeout)
            except (TimeoutError, ConnectionError):
                return
            if resp.ok:
                answers.append(resp.body)
                if len(answers) == needed and not done.done():
                    done.set_result(None)

        for r in self.replicas:
            self.messages += 1
            asyncio.ensure_future(one(r))
        try:
            await asyncio.wait_for(asyncio.shield(done), self.timeout)
        except TimeoutError:
            raise QuorumUnavailable(what, needed, len(answers), self.timeout) from None
        return answers[:needed]


class RegisterClient:
    """One client process of the register; its operations are recorded in the register's history."""

    def __init__(self, register: ReplicatedRegister, name: str):
        self.register, self.name = register, name
        self.clock = register.net.clock

    async def write(self, value: Any) -> None:
        reg, q = self.register, self.register.quorum
        handle = reg.history.invoke(self.name, "write", value, self.clock.now())
        if reg.mode == "abd":
            answers = await reg._broadcast(self.name, {"op": "get"}, q.r, f"{self.name} write({value!r}) query")
            newest = max(tuple(a["stamp"]) for a in answers)
            stamp = (newest[0] + 1, self.name)
        else:
            stamp = (self.clock.now(), self.name)
        await reg._broadcast(self.name, {"op": "put", "stamp": stamp, "value": value}, q.w,
                             f"{self.name} write({value!r})")
        reg.history.complete(handle, self.clock.now())

    async def read(self) -> Any:
        reg, q = self.register, self.register.quorum
        handle = reg.history.invoke(self.name, "read", None, self.clock.now())
        answers = await reg._broadcast(self.name, {"op": "get"}, q.r, f"{self.name} read")
        best = max(answers, key=lambda a: tuple(a["stamp"]))
        if reg.mode == "abd":
            await reg._broadcast(self.name, {"op": "put", "stamp": tuple(best["stamp"]), "value": best["value"]},
                                 q.w, f"{self.name} read write-back")
        reg.history.complete(handle, self.clock.now(), best["value"])
        return best["value"]
