"""Mixed precision: autocast on CUDA only, with a GradScaler for fp16.

``amp="bf16"`` runs the forward pass under ``torch.autocast(dtype=bfloat16)``; ``"fp16"`` also scales the
loss (``torch.amp.GradScaler``) so small fp16 gradients do not underflow. On CPU, and with ``"fp32"``,
both are no-ops: the same loop code runs everywhere (a disabled GradScaler passes calls through).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """Autocast context and gradient scaler for ``amp`` ("fp32" | "bf16" | "fp16") on ``device``."""

    def __init__(self, amp: str, device: torch.device) -> None:
        if amp not in ("fp32", *_DTYPES):
            raise ValueError(f"amp: expected 'fp32', 'bf16' or 'fp16', got {amp!r}")
        self.enabled = amp != "fp32" and device.type == "cuda"
        self.dtype = _DTYPES.get(amp, torch.float32)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.enabled and amp == "fp16")

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The forward-pass context: autocast to the chosen dtype on CUDA, else nothing."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.dtype)

    def state_dict(self) -> dict[str, Any]:
        """The scaler's state (empty when no scaler is in use)."""
        return self.scaler.state_dict() if self.scaler.is_enabled() else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state and self.scaler.is_enabled():
            self.scaler.load_state_dict(state)
