"""The genre classifier and the genre-control measurement's bookkeeping (hand-made motions)."""

from __future__ import annotations

import numpy as np
import pytest

from danceba.generation.dances import Song
from danceba.genre_classifier import accuracy, fit_genre_classifier, motion_segments
from danceba.genre_control import confusion, genre_requests, mean_joint_speed
from pipelines.genre_control import format_markdown, summarise


def dance(genre: str, seed: int, frames: int = 600) -> np.ndarray:
    """gBR: the arms swing fast and wide; gJB: the legs sway slowly. Noise differs per seed."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / 60.0
    joints = np.tile(rng.normal(0, 0.3, (1, 24, 3)), (frames, 1, 1)) + np.array([0, 0.9, 0])
    moving, hz, amplitude = (
        ((16, 17, 18, 19, 20, 21), 2.0, 0.3) if genre == "gBR" else ((1, 2, 4, 5), 0.5, 0.1)
    )
    phase = rng.uniform(0, 2 * np.pi)
    joints[:, moving, 0] += amplitude * np.sin(2 * np.pi * hz * t + phase)[:, None]
    return (joints + rng.normal(0, 0.002, joints.shape)).astype(np.float32)


def test_segments_cover_the_dance_and_a_short_dance_is_one_segment() -> None:
    segments = motion_segments(np.zeros((600, 24, 3)), 240, 120)
    assert [len(s) for s in segments] == [240] * 4
    assert len(motion_segments(np.zeros((100, 24, 3)))) == 1


def test_classifier_tells_hand_made_genres_apart_on_held_out_dances() -> None:
    train = {f"{g}_{s}": dance(g, s) for g in ("gBR", "gJB") for s in range(4)}
    held = {f"{g}_{s}": dance(g, s) for g in ("gBR", "gJB") for s in range(10, 13)}
    genre_of = {name: name[:3] for name in [*train, *held]}
    classifier = fit_genre_classifier(train, genre_of)
    assert classifier.genres == ("gBR", "gJB")
    predicted = classifier.predict(held)
    assert accuracy(predicted, genre_of) == 1.0
    swapped = {name: "gJB" if g == "gBR" else "gBR" for name, g in genre_of.items()}
    assert accuracy(predicted, swapped) == 0.0
    with pytest.raises(ValueError, match="at least 2 genres"):
        fit_genre_classifier({"a": dance("gBR", 0)}, {"a": "gBR"})


def test_requests_give_every_piece_every_genre_with_its_first_codes() -> None:
    songs = [Song("p1", np.zeros((5, 3)), 1, 2, "gBR"), Song("p2", np.zeros((5, 3)), 3, 4, "gJB")]
    requests = genre_requests(songs, ["gBR", "gJB"], {"gBR": (7, 8), "gJB": (9, 10)})
    assert [(r.name, r.genre, r.first_up, r.first_down) for r in requests] == [
        ("p1@gBR", "gBR", 7, 8),
        ("p1@gJB", "gJB", 9, 10),
        ("p2@gBR", "gBR", 7, 8),
        ("p2@gJB", "gJB", 9, 10),
    ]
    own = genre_requests(songs, ["gBR", "gJB"], None)  # the pieces' own first codes
    assert [(r.name, r.genre, r.first_up) for r in own] == [
        ("p1@gBR", "gBR", 1),
        ("p1@gJB", "gJB", 1),
        ("p2@gBR", "gBR", 3),
        ("p2@gJB", "gJB", 3),
    ]
    with pytest.raises(ValueError, match=r"no first codes for \['gJB'\]"):
        genre_requests(songs, ["gBR", "gJB"], {"gBR": (7, 8)})


def test_confusion_speed_and_summary() -> None:
    table = confusion(
        {"a": "gBR", "b": "gBR", "c": "gJB"}, {"a": "gBR", "b": "gJB", "c": "gJB"}, ["gBR", "gJB"]
    )
    assert table == {"gBR": {"gBR": 1, "gJB": 0}, "gJB": {"gBR": 1, "gJB": 1}}
    line = np.zeros((61, 24, 3))
    line[:, :, 0] = np.linspace(0, 1, 61)[:, None]  # every joint 1 m in 1 s
    assert mean_joint_speed(line) == pytest.approx(1.0)
    results = {f"s{i}": {"requested_accuracy": a, "bas_excess": 0.3} for i, a in enumerate([0.6, 0.8])}
    summary = summarise(results)
    assert (
        summary["requested_accuracy"]["mean"] == pytest.approx(0.7)
        and summary["other_genre_accuracy"]["n"] == 0
    )
    report = {
        "classifier": {
            "features": "f",
            "train_dances": 8,
            "held_out_dances": 6,
            "held_out_accuracy": 1.0,
            "chance": 0.5,
            "genres": ["gBR", "gJB"],
        },
        "pieces": 2,
        "requests_per_model": 4,
        "sampling": {"mode": "greedy", "genre_guidance": 2.0},
        "seconds": 3.0,
        "conditioned": {"models": results, "summary": summary},
        "unconditioned": {"models": {}, "summary": {}},
    }
    text = format_markdown(report)
    assert "**100%** right on the 6 held-out ones; chance 50%" in text
    assert "| conditioned | 2 | 0.7000 ± 0.1414 [" in text and "| unconditioned |" not in text
    assert "Decoding: mode greedy, genre_guidance 2.0." in text
