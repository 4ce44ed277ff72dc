"""The report's tables and sentences on a hand-made study whose answers are known."""

from __future__ import annotations

import json
from dataclasses import make_dataclass
from pathlib import Path

import optuna
import pytest

from model.config import PRESETS, TrainConfig
from model.errors import UserInputError
from search.report.collect import best_config, collect_trials, resolve_baseline, summarize
from search.report.importance import (
    categorical_params,
    describe_contrast,
    fanova_importances,
    quartile_contrast,
)
from search.report.tables import hyperparameter_table, summary_table, to_markdown
from tests.search.report.conftest import BEST


def test_v1_v2_table_reads_like_the_lab(hand_study: optuna.Study) -> None:
    v1, _ = resolve_baseline(hand_study, "v1")
    v2, number = best_config(hand_study)
    assert number == 4 and v2 == BEST
    rows = hyperparameter_table(v1, v2).values.tolist()
    assert rows == [
        ["batch size", "128", "64"],
        ["learning rate", "0.001", "0.004"],
        ["hidden size", "128", "128"],  # a lab row: shown although equal
        ["epoch", "10", "8"],
        ["optimizer", "Adam", "AdamW"],
        # then every other field where V1 and V2 differ, in TrainConfig's order
        ["weight decay", "0", "0.0001"],
        ["dropout", "0", "0.2"],
        ["LR schedule", "constant", "one-cycle"],
        ["gradient clip", "off", "1 (max norm)"],
        ["forget-gate bias", "0", "1"],
    ]
    # momentum, seed, shift, ... are equal, so absent; shift appears as soon as it differs.
    shifted = hyperparameter_table(v1, v2.with_overrides(shift=1)).values.tolist()
    assert shifted[-1] == ["random shift (pixels)", "0", "1"]
    averaged = hyperparameter_table(v1, v2.with_overrides(rotate=5.0, ema=0.9999)).values.tolist()
    assert averaged[-2:] == [["random rotation (degrees)", "0", "5"], ["EMA decay of the weights", "0", "0.9999"]]
    header = to_markdown(hyperparameter_table(v1, v2)).splitlines()[0]
    assert [cell.strip() for cell in header.strip("|").split("|")] == ["Hyper-parameter", "V1", "V2"]


def test_baseline_choices(hand_study: optuna.Study, tmp_path: Path) -> None:
    assert resolve_baseline(hand_study, "template")[0] == PRESETS["template"]
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"hidden_size": 64, "lr": 0.002}))
    cfg, _ = resolve_baseline(hand_study, str(path))
    assert (cfg.hidden_size, cfg.lr, cfg.epochs) == (64, 0.002, 10)
    path.write_text(json.dumps({"hidden": 64}))
    with pytest.raises(UserInputError, match="unknown config key"):
        resolve_baseline(hand_study, str(path))
    with pytest.raises(UserInputError, match="does not exist"):
        resolve_baseline(hand_study, str(tmp_path / "absent.json"))


def test_summary_counts_and_best(hand_study: optuna.Study) -> None:
    s = summarize(hand_study, collect_trials(hand_study))
    assert (s.n_trials, s.complete, s.pruned, s.failed, s.other) == (12, 9, 2, 1, 0)
    assert (s.best_number, s.best_value) == (4, 0.98)
    table = dict(summary_table(s).values.tolist())
    assert table["complete / pruned / failed"] == "9 / 2 / 1"
    assert table["best validation accuracy (V2)"] == "98.00 ± 0.20% (trial 4; ± one standard error)"
    assert (table["sampler"], table["pruner"], table["training images per trial"]) == (
        "tpe", "hyperband", "10,000 (--subset)")


def test_quartile_sentences_state_the_trials_ranges(hand_study: optuna.Study) -> None:
    rows = collect_trials(hand_study)
    # 9 complete trials with lr (V1's 1e-3 included): quarters of 2.
    lr = quartile_contrast(rows, "lr")
    assert lr.quarter == 2
    assert sorted(lr.best_values) == [3e-3, 4e-3] and sorted(lr.worst_values) == [1.5e-4, 2e-4]
    assert describe_contrast(lr, 0.5) == (
        "**lr** (importance 0.50): the best 2 trial(s) (val acc ≥ 97.00%) used 0.003 to 0.004; "
        "the worst 2 (val acc ≤ 80.00%) used 0.00015 to 0.0002."
    )
    opt = quartile_contrast(rows, "optimizer", categorical="optimizer" in categorical_params(hand_study))
    assert describe_contrast(opt, 0.25).endswith("used adam ×2; the worst 2 (val acc ≤ 80.00%) used rmsprop ×2.")
    # weight decay: V1 has none, so only the 8 sampled trials count.
    assert quartile_contrast(rows, "weight_decay").worst_values == [1e-3, 1e-2]


def test_fanova_covers_the_parameter_the_baseline_lacks(hand_study: optuna.Study) -> None:
    importances = fanova_importances(hand_study, seed=0)
    assert sorted(i.param for i in importances) == ["hidden_size", "lr", "optimizer", "weight_decay"]
    assert sum(i.importance for i in importances) == pytest.approx(1.0)
    assert [i.importance for i in importances] == sorted((i.importance for i in importances), reverse=True)
    assert importances == fanova_importances(hand_study, seed=0)  # seeded: reproducible


def test_fanova_needs_a_few_complete_trials() -> None:
    study = optuna.create_study(direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert fanova_importances(study) == []


def test_epoch_table_puts_runs_side_by_side_and_leaves_the_shorter_blank() -> None:
    from search.report.retrain import FinalRun
    from search.report.tables import epochs_table

    def run(n: int, acc0: float) -> FinalRun:
        rows = [{"epoch": e, "train_loss": 1 / e, "test_loss": 0.5 / e, "test_acc": acc0 + e / 100,
                 "lr": 1e-3, "seconds": 1.0} for e in range(1, n + 1)]
        return FinalRun({}, rows, rows[-1]["test_acc"], "", 100, 1.0)

    table = epochs_table(run(3, 0.9), run(2, 0.95))
    assert list(table.columns) == ["epoch", "V1 train loss", "V1 test loss", "V1 test acc", "V1 lr",
                                   "V2 train loss", "V2 test loss", "V2 test acc", "V2 lr"]
    assert table.values.tolist() == [
        [1, "1.0000", "0.5000", "91.00%", "1.00e-03", "1.0000", "0.5000", "96.00%", "1.00e-03"],
        [2, "0.5000", "0.2500", "92.00%", "1.00e-03", "0.5000", "0.2500", "97.00%", "1.00e-03"],
        [3, "0.3333", "0.1667", "93.00%", "1.00e-03", "", "", "", ""],
    ]


def test_a_field_added_to_the_config_type_appears_when_it_differs() -> None:
    # A config type with a field this module has never heard of (as a later TrainConfig may).
    Extended = make_dataclass("Extended", [("warmup_steps", int, 0)], bases=(TrainConfig,), frozen=True)
    v1, v2 = Extended(), Extended(warmup_steps=500)
    rows = hyperparameter_table(v1, v2).values.tolist()
    assert rows[-1] == ["warmup steps", "0", "500"]
    assert len(rows) == 6  # the lab's five, and the one that differs
    assert "warmup steps" not in hyperparameter_table(v1, Extended()).values[:, 0]
