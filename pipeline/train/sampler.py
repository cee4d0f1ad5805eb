"""Batch sampler that puts a fixed share of pseudo-labelled images in every batch.

Indices ``0..n_labelled-1`` are labelled images, ``n_labelled..n_labelled+n_pseudo-1`` pseudo ones.
Each batch holds ``round(ratio * batch_size)`` pseudo images (at least 1 when there are any) and
the rest labelled; an epoch is one pass over the labelled images, while the pseudo images are
drawn from their own seeded permutation, cycling when they run out. Under DDP each rank takes
every ``world``-th batch; the list is first padded with its own first batches to a multiple of
``world`` (DistributedSampler's rule), so every rank takes the same number of steps (DDP's
collectives would otherwise wait forever for the rank with one batch less).
"""

from __future__ import annotations

import numpy as np


class MixedBatchSampler:
    def __init__(
        self,
        n_labelled: int,
        n_pseudo: int,
        batch_size: int,
        ratio: float,
        seed: int,
        rank: int = 0,
        world: int = 1,
    ):
        if n_labelled <= 0:
            raise ValueError("need labelled images")
        self.n_labelled, self.n_pseudo, self.seed = n_labelled, n_pseudo, seed
        self.rank, self.world, self.epoch = rank, world, 0
        self.pseudo_per_batch = (
            0 if n_pseudo == 0 else min(batch_size - 1, max(1, round(ratio * batch_size)))
        )
        self.labelled_per_batch = batch_size - self.pseudo_per_batch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        labelled = rng.permutation(self.n_labelled)
        pseudo = (
            rng.permutation(self.n_pseudo) + self.n_labelled if self.n_pseudo else np.empty(0, int)
        )
        batches, cursor = [], 0
        for start in range(0, self.n_labelled, self.labelled_per_batch):
            batch = labelled[start : start + self.labelled_per_batch].tolist()
            for _ in range(self.pseudo_per_batch):
                batch.append(int(pseudo[cursor % self.n_pseudo]))
                cursor += 1
            batches.append(batch)
        return batches

    def __iter__(self):
        batches = self._batches()
        batches += batches[: -len(batches) % self.world]
        yield from batches[self.rank :: self.world]

    def __len__(self) -> int:
        total = -(-self.n_labelled // self.labelled_per_batch)
        return -(-total // self.world)
