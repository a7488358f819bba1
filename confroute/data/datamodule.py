"""LightningDataModule: the canonical table's train/val splits as tokenised, padded batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from confroute.text import TextEncoder


class PromptDataset(Dataset):
    def __init__(self, prompts: Sequence[str], labels: Sequence[float]):
        self.prompts = list(prompts)
        self.labels = np.asarray(labels, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, index: int) -> tuple[str, float]:
        return self.prompts[index], float(self.labels[index])


class Collate:
    """Tokenise a batch with the shared TextEncoder; pads to the longest prompt in the batch."""

    def __init__(self, encoder: TextEncoder):
        self.encoder = encoder

    def __call__(self, items: list[tuple[str, float]]) -> dict[str, torch.Tensor]:
        texts, labels = zip(*items, strict=True)
        batch = {k: torch.from_numpy(v) for k, v in self.encoder(texts).items()}
        batch["labels"] = torch.tensor(labels, dtype=torch.float32)
        return batch


class RouterDataModule(pl.LightningDataModule):
    def __init__(self, train: Any, val: Any, encoder: TextEncoder, batch_size: int = 32,
                 num_workers: int = 0):
        """`train` / `val` are canonical frames (columns prompt, label)."""
        super().__init__()
        self.train_set = PromptDataset(train["prompt"].tolist(), train["label"].to_numpy())
        self.val_set = PromptDataset(val["prompt"].tolist(), val["label"].to_numpy())
        self.collate = Collate(encoder)
        self.batch_size = batch_size
        self.num_workers = num_workers

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True,
                          collate_fn=self.collate, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size * 2, shuffle=False,
                          collate_fn=self.collate, num_workers=self.num_workers)
