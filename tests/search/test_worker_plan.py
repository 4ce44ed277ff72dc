"""The plan that picks `launch --workers` K and the threads of each from cores and memory."""

from __future__ import annotations

import pytest
import torch

from model.config import TrainConfig
from model.errors import UserInputError
from search import worker_plan
from search.space import parse_space

SPACE = parse_space("[hidden_size]\nlow = 8\nhigh = 256\n[batch_size]\nchoices = [32, 512]\n")
CPU = torch.device("cpu")
GB = 2**30


def test_auto_workers_are_limited_by_cores_and_by_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    base = TrainConfig()
    monkeypatch.setattr(worker_plan, "available_cores", lambda: 8)
    monkeypatch.setattr(worker_plan, "available_memory", lambda device="cpu": 64 * GB)
    plan = worker_plan.plan_workers("auto", None, SPACE, base, 60_000, CPU)
    assert (plan.workers, plan.threads) == (8, 1)
    per_worker = plan.per_worker_bytes
    monkeypatch.setattr(worker_plan, "available_memory", lambda device="cpu": 3 * per_worker + 1)
    plan = worker_plan.plan_workers("auto", None, SPACE, base, 60_000, CPU)
    assert (plan.workers, plan.threads) == (3, 2)  # 8 cores // 3 workers
    assert worker_plan.plan_workers("2", 1, SPACE, base, 60_000, CPU).threads == 1
    with pytest.raises(UserInputError, match="use --workers 3 or fewer"):
        worker_plan.plan_workers("4", None, SPACE, base, 60_000, CPU)


def test_a_space_whose_largest_trial_cannot_fit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_plan, "available_memory", lambda device="cpu": 2 * GB)
    big = parse_space("[hidden_size]\nlow = 8\nhigh = 8192\n")
    with pytest.raises(UserInputError, match="hidden_size 8192"):
        worker_plan.plan_workers("auto", None, big, TrainConfig(), 60_000, CPU)
    assert worker_plan.largest_config(SPACE, TrainConfig()).hidden_size == 256
    assert worker_plan.largest_config(SPACE, TrainConfig()).batch_size == 512


@pytest.mark.parametrize("text", ["0", "-2", "many"])
def test_bad_worker_counts_are_refused(text: str) -> None:
    with pytest.raises(UserInputError, match="--workers"):
        worker_plan.plan_workers(text, None, SPACE, TrainConfig(), 60_000, CPU)
