"""Drive the real demo service through a breaker, step by step, changing its faults as it runs.

``await drive(client, breaker, plan)`` runs each ``FaultStep`` in turn: it POSTs the step's
faults to the service's admin endpoint, optionally pauses through the breaker's clock
(real time with the default clock, instant with a ``ManualClock``), e.g. to let the
breaker's wait in OPEN pass, then sends ``requests`` calls one after another through
the breaker. The result lists every call's outcome and the breaker's state after it;
with error rates of 0 or 1 the sequence of outcomes and states does not depend on timing,
so a notebook can print it as a checked output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workbook.resilience.errors import CallNotPermittedError, HTTPStatusError


@dataclass(frozen=True)
class FaultStep:
    label: str
    faults: dict
    requests: int
    pause: float = 0.0


@dataclass
class LiveRun:
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (step, outcome, state after)
    transitions: list[tuple[str, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = {"ok": 0, "failed": 0, "rejected": 0}
        for _, outcome, _ in self.calls:
            out[outcome] += 1
        return out


DEMO_PLAN = (
    FaultStep("healthy", {"error_rate": 0.0, "hang": False}, 10),
    FaultStep("failing", {"error_rate": 1.0}, 20),
    FaultStep("recovered, before the wait in OPEN ends", {"error_rate": 0.0}, 5),
    FaultStep("recovered, after the wait", {"error_rate": 0.0}, 10, pause=2.2),
)


async def drive(client, breaker, plan=DEMO_PLAN, *, service: str = "inventory", path: str = "/stock/apple",
                on_call=None) -> LiveRun:
    """Run ``plan`` against ``service``; ``on_call(step, outcome, state)`` after every call."""
    run = LiveRun()

    def on_event(event):
        if event.kind == "state_transition":
            run.transitions.append((event.from_state.value, event.to_state.value))

    breaker.subscribe(on_event)
    try:
        for step in plan:
            base = client.services[service]
            async with client.session.post(base + "/admin/faults", json=step.faults) as resp:
                if resp.status != 200:
                    raise ValueError(f"step {step.label!r}: the admin endpoint refused {step.faults}: "
                                     f"{await resp.text()}")
            if step.pause:
                await breaker.clock.sleep(step.pause)
            for _ in range(step.requests):
                try:
                    await breaker.call_async(client.get, service, path)
                    outcome = "ok"
                except CallNotPermittedError:
                    outcome = "rejected"
                except (HTTPStatusError, ConnectionError, TimeoutError):
                    outcome = "failed"
                state = breaker.state.value
                run.calls.append((step.label, outcome, state))
                if on_call is not None:
                    on_call(step.label, outcome, state)
    finally:
        breaker.unsubscribe(on_event)
    return run
