"""The learning-rate schedule (transformers' linear warm-up and decay) and the validation
interval, both of which depend on how many steps a run takes on each process."""

from __future__ import annotations

import math

import pytest
import torch

from confroute.config import TrainConfig
from confroute.errors import ConfigError
from confroute.training.fit import linear_schedule, validation_interval


def _rates(total: int, warmup_ratio: float) -> list[float]:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=1.0)
    scheduler = linear_schedule(optimizer, total, warmup_ratio)
    rates = []
    for _ in range(total):
        rates.append(optimizer.param_groups[0]["lr"])  # the rate this step trains with
        optimizer.step()
        scheduler.step()
    rates.append(optimizer.param_groups[0]["lr"])  # after the last step
    return rates


def test_first_steps_warm_up_from_zero_then_decay_to_zero_at_the_last_step() -> None:
    rates = _rates(10, 0.2)  # warm-up: int(10 * 0.2) = 2 steps
    # Step k trains at k / warmup: the first step's rate is 0 (the hand-written schedule this
    # replaced used (k + 1) / warmup, so 0.5 here), then the decay (10 - k) / (10 - 2).
    expected = [0.0, 0.5] + [(10 - k) / 8 for k in range(2, 11)]
    assert rates == pytest.approx(expected)
    assert rates[-1] == 0.0


def test_no_warm_up_starts_at_the_full_rate() -> None:
    rates = _rates(4, 0.0)
    assert rates == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])


@pytest.mark.parametrize("world, expected", [(1, 12), (2, 6), (4, 3)])
def test_a_run_ending_in_its_first_epoch_validates_at_its_last_step(world: int,
                                                                    expected: int) -> None:
    cfg = TrainConfig(batch_size=8, max_steps=2)
    assert validation_interval(cfg, 96, world) == 2
    # Each process sees ceil(96 / world) rows, so an interval of batches is per process.
    per_epoch = math.ceil(math.ceil(96 / world) / 8)
    assert per_epoch == expected
    with pytest.raises(ConfigError, match="more than one epoch"):
        validation_interval(TrainConfig(batch_size=8, val_check_interval=expected + 1), 96, world)
    assert validation_interval(TrainConfig(batch_size=8, val_check_interval=expected), 96,
                               world) == expected
