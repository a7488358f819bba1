"""LightningDataModule: the canonical table's train/val splits as tokenised, padded batches.

Each batch is padded to its longest prompt, so batching prompts of similar length together
(`LengthBucketBatchSampler`) cuts the padding the encoder computes on without changing which
prompts an epoch sees.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler

from confroute.text import TextEncoder


class PromptDataset(Dataset):
    """Prompts and their targets: [n] (P(cloud needed)) or [n, K] (P(model k adequate))."""

    def __init__(self, prompts: Sequence[str], labels: Any):
        self.prompts = list(prompts)
        self.labels = np.asarray(labels, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, index: int) -> tuple[str, np.ndarray]:
        return self.prompts[index], self.labels[index]


class Collate:
    """Tokenise a batch with the shared TextEncoder; pads to the longest prompt in the batch."""

    def __init__(self, encoder: TextEncoder):
        self.encoder = encoder

    def __call__(self, items: list[tuple[str, np.ndarray]]) -> dict[str, torch.Tensor]:
        texts, labels = zip(*items, strict=True)
        batch = {k: torch.from_numpy(v) for k, v in self.encoder(texts).items()}
        batch["labels"] = torch.from_numpy(np.stack(labels).astype(np.float32))
        return batch


class LengthBucketBatchSampler(BatchSampler):
    """Batches of similar-length prompts: the order `sampler` yields is cut into chunks of
    `chunk_batches` batches, each chunk sorted by length and split into batches, and the batches
    of an epoch are shuffled.

    It keeps `BatchSampler`'s (sampler, batch_size, drop_last) arguments so that Lightning can
    swap `sampler` for a DistributedSampler under DDP: each rank then buckets only its own share,
    and every rank still gets the same number of batches.
    """

    def __init__(self, sampler: Sampler[int], batch_size: int, drop_last: bool,
                 lengths: Sequence[int], chunk_batches: int = 50, seed: int = 0):
        super().__init__(sampler, batch_size, drop_last)
        self.lengths = np.asarray(lengths)
        self.chunk_batches = chunk_batches
        self.seed = seed
        self.epoch = 0  # Lightning sets the epoch of `sampler`, not of a batch sampler

    def __iter__(self) -> Iterator[list[int]]:
        order = list(self.sampler)
        # Small sets: at least 4 chunks, so batches do not become one fixed sorted partition.
        chunk = self.batch_size * max(1, min(self.chunk_batches,
                                             len(order) // (self.batch_size * 4)))
        batches = []
        for start in range(0, len(order), chunk):
            part = sorted(order[start:start + chunk], key=lambda i: -self.lengths[i])
            batches += [part[i:i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1  # the next epoch gets a fresh batch order
        yield from (batches[i] for i in rng.permutation(len(batches)))


class RouterDataModule(pl.LightningDataModule):
    def __init__(self, train: Any, val: Any, encoder: TextEncoder, batch_size: int = 32,
                 num_workers: int = 0, bucket_by_length: bool = False, seed: int = 0,
                 label_columns: Sequence[str] = ("label",)):
        """`train` / `val` are canonical frames (columns prompt and `label_columns`: `label`
        for the two-model router, one `target:<model>` column per model for K models)."""
        super().__init__()
        columns = list(label_columns)

        def targets(frame: Any) -> np.ndarray:
            values = frame[columns].to_numpy(dtype=np.float32)
            return values[:, 0] if columns == ["label"] else values

        self.train_set = PromptDataset(train["prompt"].tolist(), targets(train))
        self.val_set = PromptDataset(val["prompt"].tolist(), targets(val))
        self.collate = Collate(encoder)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.lengths = None  # token counts after truncation, only needed for bucketing
        if bucket_by_length:
            self.lengths = encoder.lengths(self.train_set.prompts)
            # Validation metrics do not depend on row order: sorting by length pads least.
            order = np.argsort(encoder.lengths(self.val_set.prompts), kind="stable")
            self.val_set = PromptDataset([self.val_set.prompts[i] for i in order],
                                         self.val_set.labels[order])

    def train_dataloader(self) -> DataLoader:
        if self.lengths is None:
            return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True,
                              collate_fn=self.collate, num_workers=self.num_workers)
        sampler = LengthBucketBatchSampler(RandomSampler(self.train_set), self.batch_size,
                                           False, self.lengths, seed=self.seed)
        return DataLoader(self.train_set, batch_sampler=sampler, collate_fn=self.collate,
                          num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size * 2, shuffle=False,
                          collate_fn=self.collate, num_workers=self.num_workers)
