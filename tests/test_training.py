"""The one training loop: a step, an epoch, the schedule and the resume check, on a tiny linear model."""

from __future__ import annotations

import math

import pytest
import torch
from torch_geometric.data import Batch, Data

from molft.errors import InputError
from molft.training import (
    RunningMeans,
    lr_factor,
    lr_scheduler,
    require_same_settings,
    run_epoch,
    train_step,
)


def tiny_batches(count: int = 4) -> list[Batch]:
    """``count`` batches of two graphs with one feature row each and a target."""
    generator = torch.Generator().manual_seed(0)
    return [
        Batch.from_data_list([Data(x=torch.randn(1, 3, generator=generator), y=torch.tensor([[1.0]])) for _ in range(2)])
        for _ in range(count)
    ]


def squared_error(model: torch.nn.Module):
    def loss_of(batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        loss = ((model(batch.x) - batch.y) ** 2).mean()
        return loss, {"double": 2 * float(loss.detach())}

    return loss_of


def test_a_step_clips_the_gradient_norm_before_updating():
    model = torch.nn.Linear(3, 1)
    torch.nn.init.constant_(model.weight, 100.0)  # a huge loss, a huge gradient
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    logs = train_step(squared_error(model), tiny_batches(1)[0], optimizer, max_grad_norm=0.5)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert torch.linalg.vector_norm(after - before).item() == pytest.approx(0.5, rel=1e-5)  # lr 1 x clipped norm
    assert logs["loss"] > 1000 and logs["double"] == pytest.approx(2 * logs["loss"])


def test_without_clipping_the_full_gradient_is_applied():
    model = torch.nn.Linear(3, 1)
    torch.nn.init.constant_(model.weight, 100.0)
    before = model.weight.detach().clone()
    train_step(squared_error(model), tiny_batches(1)[0], torch.optim.SGD(model.parameters(), lr=1.0))
    assert torch.linalg.vector_norm(model.weight.detach() - before).item() > 10


def test_the_scheduler_steps_once_per_optimizer_step():
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = lr_scheduler(optimizer, schedule="cosine", total_steps=8, warmup_steps=2)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)  # warmup step 0: half the rate
    run_epoch(squared_error(model), tiny_batches(4), optimizer, scheduler=scheduler)
    assert scheduler.last_epoch == 4
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * lr_factor(4, 8, 2))


def test_an_epoch_returns_the_mean_of_its_steps_logs():
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # nothing moves: every step's loss is known
    batches = tiny_batches(3)
    expected = [float(squared_error(model)(b)[0].detach()) for b in batches]
    means = run_epoch(squared_error(model), batches, optimizer)
    assert means.means()["loss"] == pytest.approx(sum(expected) / 3)
    assert means.means()["double"] == pytest.approx(2 * sum(expected) / 3)
    assert means.graphs == 6


def test_after_step_sees_every_step_and_can_end_the_epoch():
    model = torch.nn.Linear(3, 1)
    seen = []
    means = run_epoch(squared_error(model), tiny_batches(4), torch.optim.SGD(model.parameters(), lr=0.01),
                      after_step=lambda batch, logs: seen.append(logs["loss"]) or len(seen) == 2)
    assert len(seen) == 2 and means.counts["loss"] == 2


def test_running_means_skip_nan_and_survive_a_checkpoint():
    means = RunningMeans()
    means.add({"loss": 1.0, "accuracy": math.nan}, graphs=2)
    means.add({"loss": 3.0, "accuracy": 0.5}, graphs=2)
    restored = RunningMeans(means.state())
    assert restored.means() == {"accuracy": 0.5, "loss": 2.0} and restored.graphs == 4


def test_schedules():
    assert [lr_factor(step, 100, 0, "constant") for step in (0, 50, 99)] == [1.0, 1.0, 1.0]
    assert lr_factor(0, 100, 10) == pytest.approx(0.1) and lr_factor(100, 100, 10) == pytest.approx(0.0)
    with pytest.raises(InputError, match="unknown schedule 'linear'"):
        lr_factor(0, 10, 0, "linear")


def test_a_resume_with_other_settings_is_refused_naming_each_difference(tmp_path):
    saved = {"lr": 0.001, "epochs": 10, "num_workers": 0}
    require_same_settings(saved, {**saved, "num_workers": 4}, where=tmp_path, may_change=["num_workers"])
    with pytest.raises(InputError, match=r"epochs: 10 then, 20 now; lr: 0.001 then, 0.01 now"):
        require_same_settings(saved, {**saved, "lr": 0.01, "epochs": 20}, where=tmp_path)
