"""Read the GPT checkpoints the official Bailando / Danceba training code saves, without unpickling code.

The official trainer saves ``{'model': state_dict, 'config': EasyDict(the training YAML), 'epoch': n}``.
``torch.load(weights_only=True)`` refuses the ``easydict.EasyDict`` objects in it. Here exactly that one
class is admitted, as a stand-in: a plain ``dict`` subclass of our own that only receives keys and
values (``easydict`` itself is never imported, so nothing of it runs). Every other object stays refused.
The config's ``structure_generate`` section then builds the matching :class:`GPTConfig`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from danceba.models.gpt_config import GPTConfig
from danceba.train.checkpoint import CheckpointError, load_weights_only

EASYDICT_GLOBAL = "easydict.EasyDict"

# structure_generate.base / .head key -> GPTConfig field (the official YAML's names).
BASE_FIELDS = {
    "block_size": "block_size",
    "n_music": "n_music",
    "vocab_size_up": "vocab_up",
    "vocab_size_down": "vocab_down",
    "n_embd": "n_embd",
    "n_head": "n_head",
    "n_layer": "n_layer_base",
    "embd_pdrop": "embd_pdrop",
    "resid_pdrop": "resid_pdrop",
    "attn_pdrop": "attn_pdrop",
}
HEAD_FIELDS = {"n_layer": "n_layer_head"}


class _EasyDictStandIn:
    """Stand-in for ``easydict.EasyDict`` while unpickling: an empty ``OrderedDict`` to fill.

    Pickle rebuilds a dict subclass with ``NEWOBJ`` (here: this ``__new__``), ``SETITEMS`` (the keys and
    values, which torch's restricted unpickler allows on an ``OrderedDict``) and ``BUILD`` (EasyDict's
    attribute copy of the same items, already-unpickled data that :func:`plain` drops).
    """

    def __new__(cls, *args: object) -> OrderedDict:  # type: ignore[misc]
        del args
        return OrderedDict()


@dataclass(frozen=True)
class OfficialCheckpoint:
    """What an official checkpoint holds: its weights, its training config (plain data) and epoch."""

    path: Path
    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any] | None
    epoch: int | None


def plain(value: Any) -> Any:
    """The same data as plain dicts and lists (the stand-in mappings become ``dict``)."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def read_official_checkpoint(path: Path) -> OfficialCheckpoint:
    """The weights (a state dict, or one under ``model`` / ``state_dict``), config and epoch of ``path``.

    Raises :class:`CheckpointError` naming the file for anything else: other pickled objects, no state
    dict, non-tensor entries in it.
    """
    with torch.serialization.safe_globals([(_EasyDictStandIn, EASYDICT_GLOBAL)]):
        payload = load_weights_only(path)
    config, epoch = None, None
    while isinstance(payload, dict):
        if isinstance(payload.get("config"), Mapping):
            config = plain(payload["config"])
        if isinstance(payload.get("epoch"), int) and not isinstance(payload.get("epoch"), bool):
            epoch = payload["epoch"]
        inner = next((payload[k] for k in ("model", "state_dict") if isinstance(payload.get(k), dict)), None)
        if inner is None:
            break
        payload = inner
    if not isinstance(payload, dict) or not payload:
        raise CheckpointError(
            f"{path}: no state dict found (expected a dict of tensors, or one under 'model')"
        )
    others = [k for k, v in payload.items() if not isinstance(v, torch.Tensor)]
    if others:
        raise CheckpointError(f"{path}: the state dict holds non-tensor entries: {others[:5]}")
    return OfficialCheckpoint(Path(path), dict(payload), config, epoch)


def gpt_fields(config: Mapping[str, Any], where: str) -> dict[str, Any]:
    """GPTConfig fields from an official training config's ``structure_generate`` section."""
    structure = config.get("structure_generate")
    if not isinstance(structure, Mapping) or not isinstance(structure.get("base"), Mapping):
        raise CheckpointError(f"{where}: the config has no structure_generate.base section")
    base, head = structure["base"], structure.get("head") or {}
    fields = {ours: base[theirs] for theirs, ours in BASE_FIELDS.items() if theirs in base}
    fields |= {ours: head[theirs] for theirs, ours in HEAD_FIELDS.items() if theirs in head}
    if "block_size" in structure:
        fields["block_size"] = structure["block_size"]
    music_emb = base.get("n_music_emb", fields.get("n_embd"))
    if music_emb != fields.get("n_embd", GPTConfig.n_embd):
        raise CheckpointError(
            f"{where}: structure_generate.base.n_music_emb {music_emb} differs from n_embd "
            f"{fields.get('n_embd')}; this GPT embeds the music at n_embd"
        )
    for theirs in ("vocab_size_up", "vocab_size_down", "n_embd", "n_head", "block_size"):
        if theirs in head and theirs in base and head[theirs] != base[theirs]:
            raise CheckpointError(
                f"{where}: structure_generate.head.{theirs} {head[theirs]} differs from base's {base[theirs]}"
            )
    return fields
