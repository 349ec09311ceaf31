"""The DVC stages, the flows that run them, and their tooling.

Importing this package pins the CPU kernels of numpy, scipy and torch to AVX2 (``danceba.cpu_kernels``)
before any stage imports them, so that every stage gives the same bits on any x86-64 machine.
"""

from danceba.cpu_kernels import pin_avx2_kernels

pin_avx2_kernels()
