"""Does asking for a genre give that genre, and keep the beat? The measurement of genre control.

For every held-out piece and every requested genre (the genres of the training data), a GPT dances the
piece's music starting from that genre's most frequent first codes (``danceba generate --genre``'s user
mode); a genre-conditioned GPT also reads the requested genre. :mod:`danceba.genre_classifier`, trained on
the training split's ground truth, names the genre of each dance. Per model:

* ``requested_accuracy``: the fraction of dances classified as the requested genre (chance 1 / genres);
  ``other_genre_accuracy`` over the requests that differ from the piece's own genre (the music says one
  genre, the request another), ``own_genre_accuracy`` over those that match it;
* ``bas_excess`` (BAS minus its circular-shift chance, ``bailando`` protocol, as ``evaluate``), over all
  requests and over the other-genre ones: does the dance keep the beat when it changes style;
* ``mean_joint_speed`` (m/s): does it still move.

Controls: the unconditioned model with the same first codes and no genre input (``--genre`` of an
unconditioned model: whatever it gets right comes from the first codes and the music), and both models
from each piece's own ground-truth first codes (the evaluation's start): there the genre input is the
only thing that tells the request, and the unconditioned model is at chance by construction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from danceba.data.aistpp import FPS
from danceba.evaluate_config import EvaluateConfig
from danceba.generation.config import SamplingConfig
from danceba.generation.dances import Song, generate_dances
from danceba.genre_classifier import GenreClassifier, accuracy
from danceba.metrics import metric_protocol
from danceba.models.gpt import CrossCondGPT
from danceba.models.vqvae import SepVQVAER
from danceba.rhythm_metrics import rhythm_scores

REQUEST_SEPARATOR = "@"


def genre_requests(
    songs: Sequence[Song], genres: Sequence[str], first_codes: Mapping[str, tuple[int, int]] | None
) -> list[Song]:
    """Each song once per genre: ``<name>@<genre>``, that genre's first codes (``first_codes`` None: the
    song's own, i.e. nothing but the genre input tells the request), ``genre`` = the request."""
    missing = [g for g in genres if first_codes is not None and g not in first_codes]
    if missing:
        raise ValueError(f"genre requests: no first codes for {missing} (no training dances of them)")
    requests = []
    for song in songs:
        for genre in genres:
            up, down = (song.first_up, song.first_down) if first_codes is None else first_codes[genre]
            name = f"{song.name}{REQUEST_SEPARATOR}{genre}"
            requests.append(replace(song, name=name, first_up=up, first_down=down, genre=genre))
    return requests


def mean_joint_speed(joints: np.ndarray) -> float:
    """(T, 24, 3) -> mean joint speed (m/s) at 60 fps."""
    return float(np.linalg.norm(np.diff(joints, axis=0), axis=-1).mean() * FPS)


def measure_genre_control(
    gpt: CrossCondGPT,
    vqvae: SepVQVAER,
    requests: Sequence[Song],
    own_genre: Mapping[str, str],
    music_of: Mapping[str, str],
    beats: Mapping[str, np.ndarray],
    classifier: GenreClassifier,
    sampling: SamplingConfig,
    evaluate: EvaluateConfig,
    batch_size: int = 16,
) -> dict[str, Any]:
    """The measures of the module docstring for one GPT; ``own_genre`` / ``music_of``: by piece name."""
    dances = generate_dances(gpt, vqvae, requests, sampling, batch_size)
    predicted = classifier.predict(dances)
    requested = {s.name: s.genre for s in requests}
    piece = {s.name: s.name.rsplit(REQUEST_SEPARATOR, 1)[0] for s in requests}
    other = [n for n in dances if requested[n] != own_genre[piece[n]]]
    own = [n for n in dances if requested[n] == own_genre[piece[n]]]
    protocol = metric_protocol("bailando")
    excess = {
        n: rhythm_scores(
            j,
            beats[music_of[piece[n]]],
            protocol,
            n_shifts=evaluate.chance_shifts,
            min_shift_frames=evaluate.min_shift_frames,
        )["bas_excess"]
        for n, j in dances.items()
    }
    return {
        "dances": len(dances),
        "requested_accuracy": accuracy(predicted, requested),
        "other_genre_accuracy": accuracy({n: predicted[n] for n in other}, requested) if other else None,
        "own_genre_accuracy": accuracy({n: predicted[n] for n in own}, requested) if own else None,
        "bas_excess": float(np.mean(list(excess.values()))),
        "other_genre_bas_excess": float(np.mean([excess[n] for n in other])) if other else None,
        "own_genre_bas_excess": float(np.mean([excess[n] for n in own])) if own else None,
        "mean_joint_speed": float(np.mean([mean_joint_speed(j) for j in dances.values()])),
        "confusion": confusion(predicted, requested, classifier.genres),
    }


def confusion(
    predicted: Mapping[str, str], requested: Mapping[str, str], genres: Sequence[str]
) -> dict[str, dict[str, int]]:
    """{requested genre: {predicted genre: count}} over the dances."""
    table = {g: dict.fromkeys(genres, 0) for g in genres}
    for name, genre in predicted.items():
        table[requested[name]][genre] += 1
    return table
