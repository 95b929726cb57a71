"""Progress lines of long one-off work (an evaluation tool's steps), with a time estimate."""
from __future__ import annotations

import time


def progress(what: str) -> None:
    print(f"  {what} ...", flush=True)


class Steps:
    """A tool's progress lines with an estimate of the time left: each step has a rough
    relative cost (a PCA is nearly free, a t-SNE or UMAP fit is not), and the seconds per
    unit of cost are measured on the steps already done. Kept beside tqdm (the training bar):
    a tool has a handful of steps of very unequal cost, where tqdm's estimate assumes equal ones."""

    def __init__(self, tool: str, costs: dict[str, float]):
        self.tool, self.costs = tool, costs
        self.order = list(costs)
        self.done = 0.0
        self.current: str | None = None
        self.t0 = time.perf_counter()

    def __call__(self, step: str, what: str = "") -> None:
        if self.current is not None:
            self.done += self.costs[self.current]
        self.current = step
        elapsed = time.perf_counter() - self.t0
        left = sum(self.costs.values()) - self.done
        eta = f", about {elapsed / self.done * left:.0f} s left" if self.done > 0 and elapsed > 1 else ""
        progress(f"{self.tool}: {what or step} (step {self.order.index(step) + 1} of {len(self.order)}{eta})")
