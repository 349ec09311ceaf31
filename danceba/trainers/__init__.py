"""The two models' training recipes on the generic loop of :mod:`danceba.train`.

``vqvae`` trains the pose VQ-VAE in Bailando's two phases, ``gpt`` the music-to-codes GPT; ``configs``
holds their params sections (no torch, so loading ``params.yaml`` imports none). :mod:`danceba.train`
knows nothing of either.
"""
