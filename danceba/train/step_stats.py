"""Per-step loss statistics kept on the device: averaged over ranks, checked late, averaged per log window.

Each step's loss and loss terms are stacked into one small tensor and all-reduced (one collective,
no host sync). Their finiteness is read back one step later (:meth:`StepStats.check_previous`), when the
device has usually finished that step, so the host keeps queueing work; :meth:`StepStats.check_all`
reads everything back before a log line or a checkpoint. The values are identical on every rank, so
every rank reaches the same verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from danceba.train.distributed import DistributedContext, all_reduce_mean


class StepStats:
    """Loss/term statistics of the steps since the last check and since the last log line."""

    def __init__(self, device: torch.device, ctx: DistributedContext) -> None:
        self.device, self.ctx = device, ctx
        self.keys: list[str] | None = None
        self.unchecked: list[tuple[int, torch.Tensor]] = []
        self.window_sum: torch.Tensor | None = None
        self.window_count = 0
        self.lr = 0.0

    def _scalar(self, name: str, value: Any) -> torch.Tensor:
        tensor = value.detach() if isinstance(value, torch.Tensor) else torch.as_tensor(value)
        if tensor.numel() != 1:
            raise ValueError(f"loss_fn: term {name!r} has shape {tuple(tensor.shape)}, expected a scalar")
        return tensor.reshape(()).to(device=self.device, dtype=torch.float32)

    def record(self, step: int, loss: torch.Tensor, terms: Mapping[str, Any], lr: float) -> None:
        """Queue step ``step``'s ``loss`` and ``terms`` (all-reduced over ranks) and add them to the window."""
        keys = list(terms)
        if self.keys is None:
            self.keys = keys
        elif keys != self.keys:
            raise ValueError(f"loss_fn: returned terms {keys} at step {step}, but {self.keys} before")
        values = torch.stack([self._scalar("loss", loss), *(self._scalar(k, v) for k, v in terms.items())])
        values = all_reduce_mean(values, self.ctx)
        self.unchecked.append((step, values))
        self.window_sum = values.clone() if self.window_sum is None else self.window_sum + values
        self.window_count += 1
        self.lr = lr

    def _check(self, entries: list[tuple[int, torch.Tensor]]) -> tuple[int, dict[str, float]] | None:
        if not entries:
            return None
        stacked = torch.stack([values for _, values in entries]).cpu()
        for (step, _), row in zip(entries, stacked, strict=True):
            if not torch.isfinite(row[0]):
                return step, dict(zip(["loss", *(self.keys or [])], row.tolist(), strict=True))
        return None

    def check_previous(self) -> tuple[int, dict[str, float]] | None:
        """First non-finite loss among all but the latest step: ``(step, {term: value})``, else None."""
        entries, self.unchecked = self.unchecked[:-1], self.unchecked[-1:]
        return self._check(entries)

    def check_all(self) -> tuple[int, dict[str, float]] | None:
        """As :meth:`check_previous`, over every queued step."""
        entries, self.unchecked = self.unchecked, []
        return self._check(entries)

    def window_means(self) -> dict[str, float]:
        """``lr``, ``train_loss`` and ``train_<term>`` averaged over the window; starts a new window."""
        if self.window_sum is None or self.window_count == 0:
            raise RuntimeError("no step recorded since the last log line")
        means = (self.window_sum / self.window_count).tolist()
        row = {"lr": self.lr, "train_loss": means[0]}
        row.update({f"train_{k}": v for k, v in zip(self.keys or [], means[1:], strict=True) if k != "loss"})
        self.window_sum, self.window_count = None, 0
        return row

    def state_dict(self) -> dict[str, Any]:
        window = None if self.window_sum is None else self.window_sum.detach().cpu()
        return {"keys": self.keys, "sum": window, "count": self.window_count, "lr": self.lr}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.keys = state["keys"]
        self.window_sum = None if state["sum"] is None else state["sum"].to(self.device)
        self.window_count, self.lr = int(state["count"]), float(state["lr"])
