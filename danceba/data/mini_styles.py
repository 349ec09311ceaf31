"""Per-genre vocabulary of the embedded mini dataset: what its music plays and how its dancers move.

A :class:`GenreStyle` holds both halves of a genre, since both are read per genre: the drum and bass
patterns, chords and timbre that :mod:`danceba.data.mini_music` plays, and the lower/upper-body moves,
easing sharpness, amplitude and groove that :mod:`danceba.data.mini_motion` dances.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GenreStyle:
    """Music and movement vocabulary of one genre. Drum/bass patterns: 16 steps per bar."""

    kick: str
    snare: str
    hat: str  # x closed, o open
    bass: str
    chords: tuple[tuple[int, bool], ...]  # (semitones above the key, minor?) per bar
    swing: float  # delay of the off-16ths, fraction of a 16th
    kick_hz: float
    hat_decay_s: float
    bass_harmonics: int
    pad_harmonics: int
    lower: tuple[str, ...]
    upper: tuple[str, ...]
    sharpness: int  # easing exponent p: speed ~ (f (1 - f))^p within a beat; larger = snappier hits
    amplitude: float
    groove: float


_MINOR = ((0, True), (8, False), (3, False), (10, False))
_MAJOR = ((0, False), (7, False), (9, True), (5, False))
_FUNK = ((2, True), (7, False), (0, False), (0, False))
_HOUSE = ((0, True), (5, True), (10, False), (3, False))
_HATS8, _HATS16, _HATS_OPEN = "x.x.x.x.x.x.x.x.", "xxxxxxxxxxxxxxxx", "x.o.x.o.x.o.x.o."
_BACKBEAT = "....x.......x..."
# Fields in order: kick, snare, hat, bass, chords, swing, kick_hz, hat_decay_s, bass_harmonics, pad_harmonics,
#                  lower moves, upper moves, sharpness, amplitude, groove.
GENRE_STYLES: dict[str, GenreStyle] = {
    "gBR": GenreStyle("x...x..xx...x.x.", _BACKBEAT, _HATS8, "x..x..x.x..x..x.", _MINOR, 0.15, 48, 0.04, 3, 2,
                      ("bounce", "step", "kick"), ("arm_swing", "torso_twist", "arm_pump"), 1, 1.0, 1.0),
    "gPO": GenreStyle("x...x...x...x...", _BACKBEAT, _HATS16, "x...x.x.x...x.x.", _FUNK, 0.0, 55, 0.02, 2, 4,
                      ("bounce", "step"), ("hit_arms", "head_nod", "arm_wave"), 2, 0.9, 0.6),
    "gLO": GenreStyle("x...x..xx...x...", _BACKBEAT, _HATS8, "x.xx..x.x.xx..x.", _FUNK, 0.1, 52, 0.03, 4, 3,
                      ("kick", "bounce"), ("point", "arm_pump", "hit_arms"), 2, 1.0, 0.8),
    "gMH": GenreStyle("x...x.x.x...x...", _BACKBEAT, _HATS8, "x.....x.x.....x.", _MINOR, 0.25, 45, 0.05, 3, 2,
                      ("bounce", "step"), ("arm_swing", "chest_pop", "head_nod"), 1, 0.9, 1.2),
    "gLH": GenreStyle("x...x..xx.x.x...", _BACKBEAT, _HATS16, "x..x....x..x..x.", _MINOR, 0.2, 47, 0.03, 3, 3,
                      ("step", "stomp"), ("arm_swing", "torso_twist", "point"), 1, 1.0, 1.0),
    "gHO": GenreStyle("x...x...x...x...", _BACKBEAT, _HATS_OPEN, "..x...x...x...x.", _HOUSE, 0.0, 50, 0.03, 2, 5,
                      ("shuffle", "step", "bounce"), ("arm_swing", "torso_twist"), 1, 0.8, 1.3),
    "gWA": GenreStyle("x...x...x...x...", _BACKBEAT, _HATS16, "x.x.x.x.x.x.x.x.", _FUNK, 0.0, 55, 0.02, 2, 4,
                      ("step", "bounce"), ("arm_whip", "arm_wave", "point"), 2, 1.1, 0.6),
    "gKR": GenreStyle("x..xx...x..xx...", _BACKBEAT, _HATS8, "x.......x.......", _MINOR, 0.1, 42, 0.06, 5, 2,
                      ("stomp", "bounce"), ("chest_pop", "arm_pump", "arm_swing"), 2, 1.2, 1.1),
    "gJS": GenreStyle("x...x...x...x...", _BACKBEAT, _HATS8, "x...x...x.x.x...", _MAJOR, 0.0, 50, 0.03, 3, 4,
                      ("kick", "step", "plie"), ("arm_wave", "torso_sway", "port_de_bras"), 1, 1.0, 0.8),
    "gJB": GenreStyle("x...x...x...x...", _BACKBEAT, _HATS8, "x.......x.......", _MAJOR, 0.0, 50, 0.04, 2, 6,
                      ("plie", "developpe"), ("port_de_bras", "torso_sway"), 1, 1.0, 0.5),
}  # fmt: skip
