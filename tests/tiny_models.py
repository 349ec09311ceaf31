"""Tiny model configurations shared by the model tests (CPU, milliseconds per forward)."""

from __future__ import annotations

from danceba.models.gpt_config import GPTConfig
from danceba.models.vqvae_config import VQVAEConfig

BLOCK, VOCAB, N_MUSIC = 8, 16, 12
TINY_GPT = GPTConfig(
    n_embd=32,
    n_head=2,
    n_layer_base=1,
    n_layer_head=1,
    block_size=BLOCK,
    vocab_up=VOCAB,
    vocab_down=VOCAB,
    n_music=N_MUSIC,
    mamba_d_state=4,
    mamba_expand=2,
    pre_n_fft=16,  # 9 bins; the tiny music window (t x 12 samples) is far shorter than 512
    pre_hop_length=8,  # <= n_music, so a t-frame window has >= t phase frames
)

TINY_VQVAE = VQVAEConfig(width=32, depth=2, emb_width=32, l_bins=64)  # trains in seconds on 2 CPU cores
