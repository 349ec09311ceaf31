"""The VQ-VAE's training windows cut on demand (MotionWindows): the same windows as the array of all of
them, the same training, a fraction of the memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from danceba.data.windows import MotionWindows, motion_windows
from danceba.motion.bailando_layout import with_root_velocity
from danceba.train.loop import train
from danceba.train.train_config import OptimConfig, TrainConfig


@pytest.fixture
def joints() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    lengths = {"a": 100, "too_short": 20, "b": 57}
    return {name: rng.normal(size=(n, 24, 3)).astype(np.float32) for name, n in lengths.items()}


def every_item(windows: MotionWindows) -> np.ndarray:
    return default_collate([windows[i] for i in range(len(windows))]).numpy()


@pytest.mark.parametrize(("length", "stride"), [(24, 8), (24, 24), (57, 5)])
def test_items_are_the_windows_of_the_array(joints, length: int, stride: int) -> None:
    expected = motion_windows(joints, length, stride)
    windows = MotionWindows(joints, length, stride)
    assert len(windows) == len(expected) > 0
    assert np.array_equal(every_item(windows), expected)
    with_velocity = MotionWindows(joints, length, stride, root_velocity=True)
    assert np.array_equal(every_item(with_velocity), with_root_velocity(torch.from_numpy(expected)).numpy())
    assert not np.array_equal(every_item(with_velocity), expected)


def test_memory_holds_each_frame_once(joints) -> None:
    windows = MotionWindows(joints, 24, 1)
    frames = sum(len(s) for s in joints.values())
    assert sum(layout.nbytes for layout in windows.layouts) == frames * 72 * 4
    assert motion_windows(joints, 24, 1).nbytes > 10 * frames * 72 * 4


def test_an_item_is_a_copy(joints) -> None:
    windows = MotionWindows(joints, 24, 8)
    windows[0][:] = 0.0
    assert np.array_equal(windows[0].numpy(), motion_windows(joints, 24, 8)[0])


def test_refuses_what_gives_no_window(joints) -> None:
    with pytest.raises(ValueError, match="at least 200 frames"):
        MotionWindows(joints, 200, 8)
    with pytest.raises(ValueError, match="positive"):
        MotionWindows(joints, 24, 0)


def test_training_on_it_equals_training_on_the_array(joints, tmp_path: Path) -> None:
    def weights_after_training(data, out: Path) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(72, 8), torch.nn.Tanh(), torch.nn.Linear(8, 72))

        def loss_fn(model, batch):
            x = batch[0] if isinstance(batch, tuple | list) else batch
            return ((model(x) - x) ** 2).mean(), {}

        cfg = TrainConfig(max_steps=12, batch_size=4, log_every=4, checkpoint_every=12, seed=5, device="cpu")
        train(model, loss_fn, data, cfg, OptimConfig(lr=1e-2), out)
        return [p.detach().clone() for p in model.parameters()]

    array = (torch.from_numpy(motion_windows(joints, 24, 8)),)
    on_demand = MotionWindows(joints, 24, 8)
    for a, b in zip(
        weights_after_training(array, tmp_path / "array"),
        weights_after_training(on_demand, tmp_path / "on_demand"),
        strict=True,
    ):
        assert torch.equal(a, b)
