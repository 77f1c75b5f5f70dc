"""The standard workloads (DESIGN §8): generated process definitions and their targets.

W1  a chain of 100 no-op agent steps, each depending on the previous one
W2  one step → 50 parallel steps → one join step (52 steps)
W3  200 executions of a 5-step chain, all started at once

Every step is an `agent_task` on the built-in `demo-noop` agent (kind demo, capacity 1000,
no latency, no cost), so what is measured is the engine and its stack, not an agent.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WORKLOADS", "Workload", "chain_yaml", "fan_out_yaml"]

AGENT = "demo-noop"


def _step(step_id: str, depends_on: list[str] | None = None) -> str:
    lines = [f"  - id: {step_id}", "    type: agent_task", f"    agent: {AGENT}",
             f'    message: "{step_id}"']
    if depends_on:
        lines.append(f"    depends_on: [{', '.join(depends_on)}]")
    return "\n".join(lines)


def chain_yaml(name: str, steps: int) -> str:
    """`steps` agent steps in a line: s001 → s002 → … (each depends on the previous)."""
    ids = [f"s{i:03d}" for i in range(1, steps + 1)]
    body = [_step(ids[0])] + [_step(ids[i], [ids[i - 1]]) for i in range(1, steps)]
    return f'name: {name}\nversion: "1.0"\nsteps:\n' + "\n".join(body) + "\n"


def fan_out_yaml(name: str, width: int) -> str:
    """One step, `width` parallel steps after it, one join step after all of them."""
    branches = [f"p{i:03d}" for i in range(1, width + 1)]
    body = [_step("first")] + [_step(b, ["first"]) for b in branches] + \
        [_step("join", branches)]
    return f'name: {name}\nversion: "1.0"\nsteps:\n' + "\n".join(body) + "\n"


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    process: str
    yaml: str
    steps: int            # steps per execution
    executions: int       # executions started at once per run
    # targets (None: no target of that kind)
    max_ms_per_step: float | None = None
    max_ratio: float | None = None
    min_throughput: float | None = None   # executions per second
    max_p95_s: float | None = None

    @property
    def target_text(self) -> str:
        parts = []
        if self.max_ms_per_step is not None:
            parts.append(f"≤{self.max_ms_per_step:g} ms/step")
        if self.max_ratio is not None:
            parts.append(f"≤{self.max_ratio:g}× raw")
        if self.min_throughput is not None:
            parts.append(f"≥{self.min_throughput:g} exec/s")
        if self.max_p95_s is not None:
            parts.append(f"p95≤{self.max_p95_s:g} s")
        return ", ".join(parts)


WORKLOADS: dict[str, Workload] = {
    "W1": Workload("W1", "chain of 100 steps", "bench-w1-chain100", chain_yaml(
        "bench-w1-chain100", 100), steps=100, executions=1, max_ms_per_step=5.0,
        max_ratio=2.0),
    "W2": Workload("W2", "1 → 50 parallel → join", "bench-w2-fanout50", fan_out_yaml(
        "bench-w2-fanout50", 50), steps=52, executions=1, max_ms_per_step=3.0),
    "W3": Workload("W3", "200 executions × 5 steps", "bench-w3-chain5", chain_yaml(
        "bench-w3-chain5", 5), steps=5, executions=200, min_throughput=150.0,
        max_p95_s=1.5),
}
