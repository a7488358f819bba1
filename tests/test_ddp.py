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
@pytest.mark.parametrize("bucket_by_length", [True, False])
def test_two_process_ddp_trains_on_both_ranks_and_writes_one_run(
        tmp_path, tiny_encoder_dir, tiny_data_file, bucket_by_length):
    out = tmp_path / "run"
    epochs = 2
    command = [sys.executable, "-m", "confroute", "train", "--out", str(out),
               "--data", str(tiny_data_file), "--encoder", str(tiny_encoder_dir),
               "--max-length", "32", "--batch-size", "8", "--max-epochs", str(epochs),
               "--learning-rate", "0.001", "--accelerator", "cpu", "--devices", "2",
               "--strategy", "ddp", "--set", "data.val_fraction=0.25",
               "--set", f"train.bucket_by_length={str(bucket_by_length).lower()}",
               "--set", "train.trainer.enable_progress_bar=false"]
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
    assert 0.0 <= metrics["val_auroc"] <= 1.0
    # Both ranks ran the command to the end (each prints its result), but only rank 0 wrote.
    assert done.stdout.count('"run_dir"') == 2

    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["best.ckpt"]
    assert [p.name for p in (out / "logs").iterdir()] == ["version_0"]
    assert load_yaml(RunConfig, out / "config.yaml").train.trainer.devices == 2

    import torch

    from confroute.router_model import RouterModel

    trained = RouterModel.load(out / "model")
    checkpoint = torch.load(out / "checkpoints" / "best.ckpt", map_location="cpu",
                            weights_only=True)["state_dict"]
    for name, value in trained.state_dict().items():
        assert torch.equal(value, checkpoint[f"model.{name}"]), name
    from transformers import AutoModel

    initial = AutoModel.from_pretrained(tiny_encoder_dir).state_dict()
    layer = "encoder.layer.1.output.dense.weight"
    assert not torch.equal(trained.encoder.state_dict()[layer], initial[layer])


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
