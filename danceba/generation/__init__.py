"""Generation: music to dance codes to joints.

``config`` (the sampler's :class:`~danceba.generation.config.SamplingConfig` and the ``generate`` section;
no torch), ``sampler`` (autoregressive decoding of codes, exact or cached), ``dances`` (songs in batches,
codes to joints, the control rows' dances) and ``user_songs`` (``danceba generate`` on any audio file).
The ``generate`` stage is ``pipelines/generate.py``. This file imports nothing, so the GPU check can load
the sampler alone.
"""
