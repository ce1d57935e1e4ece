"""Per-process random generators that follow the run's seed."""
import os
from typing import Optional

import numpy as np
import torch


class ProcessRNG:
    """A ``numpy.random.Generator`` of its own, made on first use in each process.

    It is seeded from the process's global numpy state and torch's initial seed: MMEngine seeds
    both from the run's ``randomness.seed`` and gives every dataloader worker its own, so a
    seeded run repeats exactly and workers draw different numbers. A generator made before a fork
    is never shared with the children: a new process makes its own.
    """

    def __init__(self) -> None:
        self._pid: Optional[int] = None
        self._generator: Optional[np.random.Generator] = None

    def __call__(self) -> np.random.Generator:
        if self._pid != os.getpid():
            entropy = [int(np.random.randint(2**31)), torch.initial_seed() % 2**63]
            self._generator = np.random.default_rng(np.random.SeedSequence(entropy))
            self._pid = os.getpid()
        return self._generator

    def __getstate__(self) -> dict:
        return {'_pid': None, '_generator': None}
