"""The columns of the music feature tables, and their rate: plain constants (no imports), so that the
configuration checks read them without loading librosa.

Bailando's 438-d set (:mod:`danceba.features.music`), EDGE's 35-d set, and the 21 token-rate rhythm
columns (:mod:`danceba.features.rhythm`); ``FRAMES_PER_TOKEN`` 60 fps motion frames per 7.5 fps music
frame, i.e. per motion token (VQ-VAE code).
"""

FRAMES_PER_TOKEN = 8

MFCC = slice(0, 20)
MFCC_DELTA = slice(20, 40)
CHROMA = slice(40, 52)
ONSET_ENVELOPE = 52
BEAT_COLUMN = 53
TEMPOGRAM = slice(54, 438)
N_BAILANDO_FEATURES = 438

EDGE_ONSET_ENVELOPE = 0
EDGE_MFCC = slice(1, 21)
EDGE_CHROMA_CENS = slice(21, 33)
EDGE_ONSET_PEAK = 33
EDGE_BEAT = 34
N_EDGE_FEATURES = 35

BEAT_AT_FRAME = slice(0, 8)
PHASE_SIN_COS = slice(8, 12)
BEAT_PERIOD = 12
ONSET_AT_FRAME = slice(13, 21)
N_RHYTHM_FEATURES = 21
