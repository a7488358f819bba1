"""Real DDP on the CPU: `confroute train` with two processes (accelerator cpu, devices 2,
strategy ddp, gloo) on a tiny encoder. Lightning's launcher re-runs the same command as rank 1."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from confroute.config import RunConfig, load_yaml


@pytest.mark.slow
@pytest.mark.parametrize("bucket_by_length, devices", [(True, "2"), (False, "'2'")])
def test_two_process_ddp_trains_on_both_ranks_and_writes_one_run(
        tmp_path, tmp_path_factory, tiny_encoder_dir, tiny_data_file, bucket_by_length, devices):
    out = tmp_path / "run"
    epochs = 2
    # devices as a YAML string ('2'): the old step count read any str as one device, so its
    # warm-up was twice too long and the rate never reached zero.
    config = tmp_path_factory.mktemp("config") / "trainer.yaml"
    config.write_text(f"train:\n  trainer:\n    devices: {devices}\n")
    command = [sys.executable, "-m", "confroute", "train", "--out", str(out),
               "--data.source", str(tiny_data_file), "--model.encoder", str(tiny_encoder_dir),
               "--model.max_length", "32", "--train.batch_size", "8",
               "--train.max_epochs", str(epochs), "--train.learning_rate", "0.001",
               "--train.trainer.accelerator", "cpu", "--config", str(config),
               "--train.trainer.strategy", "ddp", "--data.val_fraction", "0.25",
               "--train.bucket_by_length", str(bucket_by_length).lower(),
               "--train.trainer.enable_progress_bar", "false"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMP_NUM_THREADS": "1", "MASTER_PORT": str(_free_port())}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    # DistributedSampler gives each rank half of every epoch (rounded up, padded by repeats):
    # without it each rank would see all rows and the counts would be twice as large.
    per_rank = math.ceil(metrics["train_rows"] / 2) * epochs
    assert metrics["examples_per_rank"] == [per_rank, per_rank]
    assert metrics["global_steps"] == math.ceil(per_rank / epochs / 8) * epochs
    # The LR schedule spans the steps each rank takes (half of one process's), and the rate
    # decays to zero at the last of them.
    assert metrics["schedule_steps"] == metrics["global_steps"]
    assert metrics["schedule_steps"] == math.ceil(math.ceil(metrics["train_rows"] / 2) / 8) * 2
    assert metrics["schedule_steps"] < math.ceil(metrics["train_rows"] / 8) * epochs
    assert metrics["final_learning_rate"] == 0.0
    assert 0.0 <= metrics["val_auroc"] <= 1.0
    # Both ranks trained (examples_per_rank above); only rank 0 wrote and reported.
    assert done.stdout.count('"run_dir"') == 1
    assert json.loads(done.stdout[done.stdout.index("{"):])["world_size"] == 2

    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["best.ckpt"]
    assert [p.name for p in (out / "logs").iterdir()] == ["version_0"]
    assert str(load_yaml(RunConfig, out / "config.yaml").train.trainer.devices) == "2"

    import torch

    from confroute.training.model import RouterModel

    trained = RouterModel.load(out / "model")
    checkpoint = torch.load(out / "checkpoints" / "best.ckpt", map_location="cpu",
                            weights_only=True)["state_dict"]
    for name, value in trained.state_dict().items():
        assert torch.equal(value, checkpoint[f"model.{name}"]), name
    from transformers import AutoModel

    initial = AutoModel.from_pretrained(tiny_encoder_dir).state_dict()
    layer = "encoder.layer.0.output.dense.weight"
    assert not torch.equal(trained.encoder.state_dict()[layer], initial[layer])


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the length-bucketed batch sampler, alone and under a DistributedSampler ------------------


def _lengths(n: int = 1000, seed: int = 0) -> list[int]:
    import numpy as np

    return np.random.default_rng(seed).integers(4, 129, size=n).tolist()


def _padding(batches: list[list[int]], lengths: list[int]) -> float:
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    return 1 - sum(lengths) / padded


def test_bucketed_batches_cover_every_row_once_pad_less_and_reshuffle():
    import torch
    from torch.utils.data import BatchSampler, RandomSampler

    from confroute.training.datamodule import LengthBucketBatchSampler

    lengths = _lengths()
    torch.manual_seed(0)
    sampler = LengthBucketBatchSampler(RandomSampler(range(1000)), 32, False, lengths)
    first, second = list(sampler), list(sampler)
    for epoch in (first, second):
        assert sorted(i for b in epoch for i in b) == list(range(1000))
        assert len(epoch) == len(sampler) == 32  # ceil(1000 / 32)
    assert first != second
    plain = list(BatchSampler(RandomSampler(range(1000)), 32, False))
    assert _padding(first, lengths) < _padding(plain, lengths) / 3
    # Batch order is random, not longest-first: the first batches are not all the longest.
    maxima = [max(lengths[i] for i in b) for b in first]
    assert maxima != sorted(maxima, reverse=True)


def test_bucketed_batches_split_disjoint_shares_across_ranks():
    from torch.utils.data import DistributedSampler

    from confroute.training.datamodule import LengthBucketBatchSampler

    lengths = _lengths(998)
    shares = []
    for rank in (0, 1):
        ranked = DistributedSampler(range(998), num_replicas=2, rank=rank, shuffle=True, seed=3)
        shares.append(list(LengthBucketBatchSampler(ranked, 16, False, lengths)))
    assert len(shares[0]) == len(shares[1])  # equal batch counts: no rank waits forever
    rows = [{i for b in share for i in b} for share in shares]
    assert not rows[0] & rows[1] and rows[0] | rows[1] == set(range(998))
