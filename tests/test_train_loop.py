"""The generic training loop: bit-identical resume, best/last checkpoints, folder guard, NaN stop,
weights_only checkpoints, optimiser schedule, sampler and seeding. A 2-layer MLP on random data."""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from danceba.train import loop as loop_module
from danceba.train.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointConfigMismatchError,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from danceba.train.loop import NonFiniteLossError, TrainResult, train
from danceba.train.optim import build_optimizer, build_scheduler, epochs_to_steps
from danceba.train.sampler import ResumableBatchSampler, epoch_permutation
from danceba.train.seeding import capture_rng_state, restore_rng_state, seed_everything
from danceba.train.train_config import OptimConfig, TrainConfig

# ---------------------------------------------------------------------------------------------- fixtures

X = torch.randn(48, 4, generator=torch.Generator().manual_seed(0))
Y = X.sum(dim=1, keepdim=True)
X_VAL = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))
Y_VAL = X_VAL.sum(dim=1, keepdim=True)
OPTIM = OptimConfig(lr=1e-2, milestones=(10,), gamma=0.5)


def make_model() -> torch.nn.Module:
    """MLP with dropout, so resuming depends on torch's RNG state being restored."""
    torch.manual_seed(123)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(16, 1)
    )


def noisy_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]):
    """MSE scaled by python- and numpy-random factors, so those RNG states matter for the weights too."""
    x, y = batch
    mse = ((model(x) - y) ** 2).mean()
    scale = 1.0 + 0.2 * (np.random.rand() - 0.5) + 0.2 * (random.random() - 0.5)  # noqa: NPY002
    return mse * scale, {"mse": mse}


def evaluate(model: torch.nn.Module) -> dict[str, float]:
    return {"val_loss": float(((model(X_VAL) - Y_VAL) ** 2).mean())}


def config(max_steps: int, **overrides) -> TrainConfig:
    base = dict(
        max_steps=max_steps, batch_size=8, log_every=2, eval_every=4, checkpoint_every=8, seed=3, device="cpu"
    )
    return TrainConfig(**{**base, **overrides})


def run(out_dir: Path, max_steps: int, **kwargs) -> tuple[torch.nn.Module, TrainResult]:
    model = make_model()
    cfg = kwargs.pop("cfg", None) or config(max_steps)
    result = train(model, kwargs.pop("loss_fn", noisy_loss), (X, Y), cfg, kwargs.pop("optim", OPTIM), out_dir,
                   kwargs.pop("evaluate", evaluate), **kwargs)  # fmt: skip
    return model, result


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def run_outputs(out_dir: Path) -> tuple[str, ...]:
    return tuple(
        (out_dir / name).read_text() for name in ("metrics.json", "plots/train.csv", "plots/val.csv")
    )


@pytest.fixture(scope="module", autouse=True)
def only_this_thread_draws_from_python_random():
    """Other threads draw from a generator of their own while these tests run.

    The resume tests compare weights bit for bit, and ``noisy_loss`` reads python's global generator. A
    Prefect flow tested earlier in the session leaves its event-loop thread behind, and its websocket
    pings call ``random.getrandbits`` (measured: 15 such draws over the suite's first 58 files, at
    random moments); one during a run made that run's weights differ in the 4th digit.
    """
    private, main = random.Random(0), threading.main_thread()

    def for_this_thread(name: str):
        shared, elsewhere = getattr(random, name), getattr(private, name)
        return lambda *args, **kwargs: (shared if threading.current_thread() is main else elsewhere)(
            *args, **kwargs
        )

    with pytest.MonkeyPatch.context() as patch:
        for name in ("random", "getrandbits", "randint", "randrange", "uniform", "choice", "shuffle"):
            patch.setattr(random, name, for_this_thread(name))
        yield


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[torch.nn.Module, TrainResult, Path]:
    out = tmp_path_factory.mktemp("uninterrupted")
    model, result = run(out, 24)
    return model, result, out


# ---------------------------------------------------------------------------------------------- resume


def test_another_threads_draws_leave_this_threads_sequence_alone() -> None:
    random.seed(7)
    expected = [random.random() for _ in range(3)]
    random.seed(7)
    pinger = threading.Thread(target=lambda: [random.getrandbits(32) for _ in range(5)])
    pinger.start()
    pinger.join()
    assert [random.random() for _ in range(3)] == expected


def test_restart_after_shorter_run_is_bit_identical(uninterrupted, tmp_path: Path) -> None:
    model_a, result_a, out_a = uninterrupted
    _, first = run(tmp_path, 12)  # stops at 12, between checkpoints at 8 and 16: last.pt at 12
    assert first.steps == 12 and load_checkpoint(tmp_path / "last.pt")["step"] == 12
    model_b, result_b = run(tmp_path, 24)
    assert result_b.start_step == 12
    assert_same_weights(model_a, model_b)
    assert run_outputs(tmp_path) == run_outputs(out_a)
    assert result_b.best == result_a.best


def test_kill_between_checkpoints_resumes_from_earlier_last_and_recomputes(
    uninterrupted, tmp_path: Path
) -> None:
    model_a, _, out_a = uninterrupted

    def kill_at_14(step: int, metrics: dict[str, float]) -> None:
        if step == 14:
            raise KeyboardInterrupt("simulated kill")

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, 24, on_log=kill_at_14)
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 8
    model_b, result_b = run(tmp_path, 24)
    assert result_b.start_step == 8
    assert_same_weights(model_a, model_b)
    assert run_outputs(tmp_path) == run_outputs(out_a)


def test_kill_before_first_last_checkpoint_restarts_and_keeps_best(uninterrupted, tmp_path: Path) -> None:
    """Killed after best_val_loss.pt (step 4) but before last.pt (step 8): a fresh start that only
    replaces the kept best on a strict improvement, ending like the uninterrupted run."""
    model_a, result_a, out_a = uninterrupted

    def kill_at_6(step: int, metrics: dict[str, float]) -> None:
        if step == 6:
            raise KeyboardInterrupt("simulated kill")

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, 24, on_log=kill_at_6)
    assert not (tmp_path / "last.pt").exists() and (tmp_path / "best_val_loss.pt").exists()
    model_b, result_b = run(tmp_path, 24)
    assert result_b.start_step == 0 and result_b.best == result_a.best
    assert_same_weights(model_a, model_b)
    assert run_outputs(tmp_path) == run_outputs(out_a)


def test_dataloader_workers_do_not_change_the_data_order(uninterrupted, tmp_path: Path) -> None:
    """Prefetching workers for the first half, none after the resume: still the uninterrupted weights."""
    model_a, _, _ = uninterrupted
    run(tmp_path, 12, cfg=config(12, num_workers=2))
    model_b, result_b = run(tmp_path, 24)
    assert result_b.start_step == 12
    assert_same_weights(model_a, model_b)


def test_resume_without_rng_restore_would_differ(uninterrupted, tmp_path: Path, monkeypatch) -> None:
    """Guards the resume tests: with the RNG states not restored, the weights do differ."""
    model_a, _, _ = uninterrupted
    run(tmp_path, 12)
    monkeypatch.setattr(loop_module, "restore_rng_state", lambda state: None)
    model_b, _ = run(tmp_path, 24)
    assert not all(torch.equal(a, b) for a, b in zip(model_a.parameters(), model_b.parameters(), strict=True))


# ---------------------------------------------------------------------------------------------- best / last


@pytest.mark.parametrize(
    ("mode", "values", "best_step"),
    [("min", [3.0, 2.0, 2.5, 2.0], 4), ("max", [1.0, 3.0, 2.0, 3.0], 4), ("min", [3.0, 2.0, 2.5, 1.0], 8)],
)
def test_best_checkpoint_replaced_only_on_improvement(
    tmp_path: Path, caplog, mode, values, best_step
) -> None:
    scripted = iter(values)
    cfg = config(8, eval_every=2, best_metric="score", best_mode=mode)
    with caplog.at_level(logging.INFO, logger="danceba.train.loop"):
        _, result = run(tmp_path, 8, cfg=cfg, evaluate=lambda model: {"score": next(scripted)})
    best = load_checkpoint(tmp_path / "best_score.pt")
    assert best["step"] == best_step and result.best["step"] == best_step
    assert best["metrics"]["best"]["value"] == result.best["value"] == values[best_step // 2 - 1]
    assert result.best_checkpoint == tmp_path / "best_score.pt"
    replaced = [r.getMessage() for r in caplog.records if "replaced the previous best" in r.getMessage()]
    assert (
        replaced[0]
        == f"best_score.pt: replaced the previous best (score {values[0]:g} at step 2) with score {values[1]:g} at step 4"
    )
    assert len(replaced) == (2 if best_step == 8 else 1)
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["best"]["step"] == best_step and summary["steps"] == 8


def test_last_written_at_cadence_and_at_end(tmp_path: Path) -> None:
    writes: list[int] = []
    original = loop_module.save_checkpoint
    loop_module.save_checkpoint = lambda path, payload: (
        writes.append(payload["step"]),
        original(path, payload),
    )[1]
    try:
        run(tmp_path, 19, cfg=config(19, eval_every=0))
    finally:
        loop_module.save_checkpoint = original
    assert writes == [8, 16, 19]
    assert not list(tmp_path.glob("best_*.pt"))


def test_refuses_folder_with_a_different_config(tmp_path: Path) -> None:
    run(tmp_path, 4, run_config={"width": 16})
    with pytest.raises(CheckpointConfigMismatchError, match=r"optim\.lr: 0\.01 -> 0\.02"):
        run(tmp_path, 8, run_config={"width": 16}, optim=OptimConfig(lr=2e-2, milestones=(10,), gamma=0.5))
    with pytest.raises(CheckpointConfigMismatchError, match=r"run\.width: 16 -> 32"):
        run(tmp_path, 8, run_config={"width": 32})
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 4  # untouched by the refused runs
    _, result = run(tmp_path, 8, run_config={"width": 32}, resume=True)
    assert result.start_step == 4 and result.steps == 8
    assert load_checkpoint(tmp_path / "last.pt")["config"]["run"] == {"width": 32}


def test_checkpoint_carries_config_lineage_and_sampler_position(tmp_path: Path) -> None:
    run(tmp_path, 10, lineage={"git_commit": "abc123", "data": {"joints": "md5:00"}})
    payload = torch.load(tmp_path / "last.pt", weights_only=True)
    assert payload["format"] == CHECKPOINT_FORMAT and payload["step"] == 10
    assert payload["lineage"] == {"git_commit": "abc123", "data": {"joints": "md5:00"}}
    assert payload["config"]["train"]["batch_size"] == 8 and payload["config"]["optim"]["milestones"] == [10]
    assert (
        payload["sampler"]["epoch"] == 1 and payload["sampler"]["position"] == 4
    )  # 48 samples / 8 = 6 per epoch
    assert len(payload["rng"]) == 1 and set(payload["rng"][0]) == {"python", "numpy", "torch", "cuda"}


# ---------------------------------------------------------------------------------------------- non-finite loss


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path, bad: float) -> None:
    calls = {"n": 0}

    def loss_fn(model, batch):
        calls["n"] += 1
        loss, terms = noisy_loss(model, batch)
        return (loss * bad, {"mse": terms["mse"] * bad}) if calls["n"] == 11 else (loss, terms)

    with pytest.raises(
        NonFiniteLossError, match=r"non-finite loss at step 11 \(loss=(nan|inf), mse="
    ) as info:
        run(tmp_path, 24, loss_fn=loss_fn, cfg=config(24, checkpoint_every=4))
    assert info.value.step == 11 and set(info.value.terms) == {"loss", "mse"}
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["step"] == 8
    assert all(torch.isfinite(t).all() for t in last["model"].values())
    best = load_checkpoint(tmp_path / "best_val_loss.pt")
    assert best["step"] <= 8 and all(torch.isfinite(t).all() for t in best["model"].values())


# ---------------------------------------------------------------------------------------------- checkpoint files


def test_rng_states_survive_weights_only_round_trip(tmp_path: Path) -> None:
    seed_everything(5)
    random.random(), np.random.rand(), np.random.randn(), torch.rand(1)  # noqa: NPY002 (a cached gaussian)
    save_checkpoint(tmp_path / "rng.pt", {"rng": capture_rng_state()})
    expected = (random.random(), np.random.rand(3).tolist(), np.random.randn(), torch.rand(3))  # noqa: NPY002
    seed_everything(99)
    restore_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    got = (random.random(), np.random.rand(3).tolist(), np.random.randn(), torch.rand(3))  # noqa: NPY002
    assert got[:3] == expected[:3] and torch.equal(got[3], expected[3])


class _Payload:
    """An arbitrary object whose unpickling would run code (it creates a marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_loader_refuses_checkpoint_holding_an_arbitrary_object(tmp_path: Path) -> None:
    marker = tmp_path / "code_ran"
    torch.save({"format": CHECKPOINT_FORMAT, "model": {}, "extra": _Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match=r"evil\.pt: refused"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()
    torch.save({"step": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a danceba training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_writer_refuses_objects_that_would_not_load(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"lineage\.array: ndarray"):
        save_checkpoint(tmp_path / "x.pt", {"lineage": {"array": np.zeros(2)}})
    assert not (tmp_path / "x.pt").exists() and not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------- optimiser


def test_milestones_reduce_lr_by_gamma_after_the_right_step() -> None:
    cfg = OptimConfig(name="adam", lr=0.1, betas=(0.5, 0.999), milestones=(3, 5), gamma=0.5)
    optimizer = build_optimizer(torch.nn.Linear(2, 1).parameters(), cfg)
    scheduler = build_scheduler(optimizer, cfg)
    used = []
    for _ in range(7):
        used.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert used == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.param_groups[0]["betas"] == (0.5, 0.999)
    adamw = build_optimizer(torch.nn.Linear(2, 1).parameters(), OptimConfig(name="adamw", weight_decay=0.01))
    assert isinstance(adamw, torch.optim.AdamW) and adamw.param_groups[0]["weight_decay"] == 0.01
    assert epochs_to_steps((250, 400), 12) == (3000, 4800)


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_optimizer_is_multi_tensor_and_bit_identical_to_the_per_tensor_loop(name: str) -> None:
    cfg = OptimConfig(name=name, lr=1e-2, betas=(0.5, 0.999), weight_decay=0.01 if name == "adamw" else 0.0)
    fast, slow = make_model(), make_model()
    fast_opt = build_optimizer(fast.parameters(), cfg)
    slow_opt = type(fast_opt)(
        slow.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, foreach=False
    )
    assert fast_opt.defaults["foreach"] is True
    for model, optimizer in ((fast, fast_opt), (slow, slow_opt)):
        torch.manual_seed(7)  # the same dropout masks for both
        for _ in range(20):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(X), Y).backward()
            optimizer.step()
    for a, b in zip(fast.parameters(), slow.parameters(), strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(fast[0].weight, make_model()[0].weight)  # it did train


def test_loop_logs_the_lr_each_step_used(uninterrupted) -> None:
    _, result, _ = uninterrupted
    lr = {row["step"]: row["lr"] for row in result.history.train}
    assert lr[10] == 1e-2 and lr[12] == 5e-3  # milestone 10: steps 1..10 at lr, from step 11 at lr * gamma


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"milestones": (5, 3)}, "optim.milestones"),
        ({"name": "sgd"}, "optim.name"),
        ({"grad_clip": -1.0}, "optim.grad_clip"),
    ],
)
def test_optim_config_rejects_bad_values(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        OptimConfig(**kwargs)


def test_grad_clip_clips_the_global_norm(tmp_path: Path, monkeypatch) -> None:
    seen = []
    clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda p, n: (seen.append(n), clip(p, n))[1])
    run(tmp_path, 3, optim=OptimConfig(lr=1e-2, grad_clip=0.5), cfg=config(3, eval_every=0))
    assert seen == [0.5, 0.5, 0.5]


# ---------------------------------------------------------------------------------------------- config / inputs


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_steps": 0}, "train.max_steps"),
        ({"amp": "fp8"}, "train.amp"),
        ({"eval_every": -1}, "train.eval_every"),
    ],
)
def test_train_config_rejects_bad_values(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_evaluate_without_the_best_metric_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"best_metric 'val_loss' is not among them"):
        run(tmp_path, 4, evaluate=lambda model: {"fid_k": 1.0})


def test_amp_on_cpu_is_ignored_and_dataset_objects_work(tmp_path: Path) -> None:
    _, result = run(tmp_path, 4, cfg=config(4, amp="bf16", eval_every=0), evaluate=None)
    assert result.steps == 4 and result.best is None and result.best_checkpoint is None
    assert np.isfinite(result.final_metrics["train_loss"])
    model = make_model()
    dataset = torch.utils.data.TensorDataset(X, Y)
    train(model, noisy_loss, dataset, config(2, eval_every=0), OPTIM, tmp_path / "ds")
    assert load_checkpoint(tmp_path / "ds" / "last.pt")["step"] == 2


# ---------------------------------------------------------------------------------------------- sampler / seeding


def test_sampler_epochs_are_permutations_and_ranks_split_the_global_batch() -> None:
    single = iter(ResumableBatchSampler(10, 4, seed=1))
    epoch0 = [next(single) for _ in range(2)]  # 10 // 4 = 2 batches; 2 samples dropped
    seen = [i for batch in epoch0 for i in batch]
    assert len(set(seen)) == 8 and sorted(seen) == sorted(epoch_permutation(10, 1, 0)[:8].tolist())
    assert epoch_permutation(10, 1, 0).tolist() != epoch_permutation(10, 1, 1).tolist()
    ranks = [iter(ResumableBatchSampler(10, 4, seed=1, rank=r, world_size=2)) for r in range(2)]
    for expected in [*epoch0, next(single)]:
        assert next(ranks[0]) + next(ranks[1]) == expected


def test_sampler_resumes_mid_epoch() -> None:
    full = iter(ResumableBatchSampler(13, 3, seed=2))
    batches = [next(full) for _ in range(10)]
    sampler = ResumableBatchSampler(13, 3, seed=2)
    state = sampler.state_at(6)
    assert state["epoch"] == 1 and state["position"] == 2
    resumed = iter(ResumableBatchSampler(13, 3, seed=2, start_batch=sampler.check_state(state)))
    assert [next(resumed) for _ in range(4)] == batches[6:]
    with pytest.raises(ValueError, match="batch_size was 3 in the checkpoint, now 4"):
        ResumableBatchSampler(13, 4, seed=2).check_state(state)


def test_seed_everything_seeds_all_generators_and_offsets_by_rank(monkeypatch) -> None:
    def draws():
        return random.random(), float(np.random.rand()), float(torch.rand(1))  # noqa: NPY002

    generator = seed_everything(11)
    first = draws()
    seed_everything(11)
    assert draws() == first and generator.initial_seed() == 11
    monkeypatch.setenv("RANK", "1")
    assert seed_everything(11).initial_seed() == 12 and draws() != first
    try:
        seed_everything(11, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        seed_everything(11, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()


def test_run_folder_digest_ignores_what_a_resume_may_change() -> None:
    from danceba.train.checkpoint import config_digest
    from danceba.trainers.configs import TrainGPTConfig

    base = TrainGPTConfig()
    longer = dataclasses.replace(base, train=dataclasses.replace(base.train, max_steps=99, device="cpu"))
    other_lr = dataclasses.replace(base, optim=dataclasses.replace(base.optim, lr=1e-3))
    assert config_digest(longer) == config_digest(base)
    assert config_digest(other_lr) != config_digest(base)


def test_new_training_data_gets_a_new_run_folder(tmp_path: Path) -> None:
    from danceba.nested import file_digest
    from danceba.train.checkpoint import config_digest

    data = tmp_path / "tokens.parquet"
    data.write_bytes(b"windows of the mini dataset")
    before = config_digest({"config": {"lr": 1.0}, "data": file_digest([data], "md5")})
    data.write_bytes(b"windows of a bigger mini dataset")
    assert config_digest({"config": {"lr": 1.0}, "data": file_digest([data], "md5")}) != before
