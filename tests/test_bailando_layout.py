"""Bailando motion layout helpers: layout round trips, root velocity, sliding windows, MPJPE (numpy, torch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from danceba.motion.bailando_layout import (
    integrate_root_velocity,
    joints_from_bailando_layout,
    mpjpe_mm,
    sliding_windows,
    to_bailando_layout,
    with_root_velocity,
    zero_root,
)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_layout_helpers_invert(backend: str, rng: np.random.Generator) -> None:
    joints = rng.normal(size=(50, 24, 3))
    joints[:, 0] += np.linspace(0, 1, 50)[:, None]  # a moving root
    if backend == "torch":
        joints = torch.from_numpy(joints)
    x72 = to_bailando_layout(joints)
    assert x72.shape == (50, 72)
    assert np.allclose(np.asarray(x72[:, :3]), np.asarray(joints[:, 0]))
    assert np.allclose(np.asarray(x72[:, 3:6]), np.asarray(joints[:, 1] - joints[:, 0]))
    assert np.allclose(
        np.asarray(joints_from_bailando_layout(x72, root_is_velocity=False)), np.asarray(joints)
    )
    vel = with_root_velocity(x72)
    assert np.allclose(np.asarray(vel[:-1, :3]), np.asarray(x72[1:, :3] - x72[:-1, :3]))
    assert np.allclose(np.asarray(vel[-1, :3]), np.asarray(vel[-2, :3]))
    assert np.array_equal(np.asarray(vel[:, 3:]), np.asarray(x72[:, 3:]))
    shifted = np.asarray(joints) - np.asarray(joints)[:1, :1]
    assert np.allclose(np.asarray(joints_from_bailando_layout(vel, root_is_velocity=True)), shifted)
    zeroed = zero_root(x72)
    assert not np.asarray(zeroed[:, :3]).any() and np.asarray(x72[:, :3]).any()


def test_integrate_root_velocity() -> None:
    vel = torch.ones(2, 5, 3)
    assert torch.equal(integrate_root_velocity(vel)[0, :, 0], torch.arange(5.0))
    assert np.array_equal(integrate_root_velocity(np.ones((5, 3)))[:, 2], np.arange(5.0))
    with pytest.raises(ValueError, match="vel"):
        integrate_root_velocity(torch.ones(5, 4))


def test_sliding_windows() -> None:
    x = np.arange(250 * 2, dtype=np.float32).reshape(250, 2)
    windows = sliding_windows(x, length=240, stride=8)
    assert windows.shape == (2, 240, 2)
    assert np.array_equal(windows[1], x[8:248])
    assert np.array_equal(sliding_windows(torch.from_numpy(x), 240, 8).numpy(), windows)
    assert sliding_windows(x[:100], 240, 8).shape == (0, 240, 2)
    assert sliding_windows(torch.from_numpy(x[:100]), 240, 8).shape == (0, 240, 2)
    with pytest.raises(ValueError, match="stride"):
        sliding_windows(x, 240, 0)


def test_mpjpe_mm() -> None:
    target = torch.zeros(2, 10, 24, 3)
    pred = target.clone()
    pred[..., 0] += 0.003
    pred[..., 1] += 0.004
    assert mpjpe_mm(pred, target) == pytest.approx(5.0)
    assert mpjpe_mm(pred.numpy(), target.numpy()) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="equal shapes"):
        mpjpe_mm(pred, target[:1])
