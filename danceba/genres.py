"""AIST++'s ten dance genres and the labels a genre-conditioned GPT reads.

The genre is the first part of every AIST++ sequence name (``gBR_sBM_cAll_d04_mBR0_ch01``; tempo-stretched
copies ``...x1.08`` keep it). Labels: ``0 .. 9`` in :data:`GENRES` order, and :data:`ANY_GENRE` (10), the
"any genre" label the model learns from training windows whose label was dropped
(``train_gpt.genre_dropout``) and reads when no genre is asked for.
"""

from __future__ import annotations

GENRES: dict[str, str] = {
    "gBR": "Break",
    "gPO": "Pop",
    "gLO": "Lock",
    "gMH": "Middle Hip-hop",
    "gLH": "LA style Hip-hop",
    "gHO": "House",
    "gWA": "Waack",
    "gKR": "Krump",
    "gJS": "Street Jazz",
    "gJB": "Ballet Jazz",
}
GENRE_CODES: tuple[str, ...] = tuple(GENRES)
ANY_GENRE = len(GENRE_CODES)  # the label of "any genre"
N_GENRE_LABELS = ANY_GENRE + 1


def genre_label(code: str | None) -> int:
    """``"gBR"`` -> 0 ... ``"gJB"`` -> 9; None -> :data:`ANY_GENRE`. ValueError for an unknown code."""
    if code is None:
        return ANY_GENRE
    if code not in GENRES:
        raise ValueError(f"unknown genre {code!r}; known: {', '.join(GENRE_CODES)}")
    return GENRE_CODES.index(code)


def sequence_genre(sequence: str) -> str:
    """The genre code of an AIST++ sequence name (``gBR_sBM_...`` -> ``gBR``); ValueError if it has none."""
    code = sequence.split("_", 1)[0]
    if code not in GENRES:
        raise ValueError(
            f"sequence {sequence!r}: its name does not start with a genre code ({', '.join(GENRE_CODES)})"
        )
    return code
