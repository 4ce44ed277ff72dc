"""The generated sentences follow the numbers: other measurements, other words."""

from __future__ import annotations

from search.report.narrative import describe_gates, describe_seeds, spread
from search.report.tables import forced_gates_table


def test_spread_is_mean_and_sample_std_written_with_plus_minus() -> None:
    s = spread([0.9879, 0.9885, 0.9873])
    assert s.text() == "98.79 ± 0.06%"


def test_one_seed_has_an_unknown_spread_not_a_zero_one() -> None:
    one = spread([0.9853])
    assert one.text() == "98.53% (one seed: spread unknown)"
    assert "±" not in one.text() and "0.00" not in one.text()


def test_seed_sentence_says_when_the_gain_is_within_the_spread() -> None:
    v1 = spread([0.9879, 0.9885, 0.9873])
    clear = describe_seeds(v1, spread([0.9939, 0.9941, 0.9936]))
    assert "+0.60 points" in clear and "larger than the seed spread" in clear
    assert "every V2 seed beats every V1 seed" in clear
    noisy = describe_seeds(v1, spread([0.9890, 0.9870, 0.9900]))
    assert "within the seed spread" in noisy and "cannot be told apart from luck" in noisy
    # A mean gain beyond the two stds still counts as luck while the seeds overlap.
    overlap = describe_seeds(spread([0.10, 0.10, 0.10]), spread([0.18, 0.15, 0.10]))
    assert "within the seed spread" in overlap and "some V1 seed does at least as well" in overlap
    assert "spread between seeds is unknown" in describe_seeds(spread([0.98]), spread([0.99]))


def _gates(f0: float, f1: float) -> dict:
    means = {"i": [0.3, 0.6, 0.4], "f": [0.9, 0.5, 0.8], "o": [0.5, 0.55, 0.6], "abs_c": [0.1, 0.4, 0.3]}
    return {"means": means, "forced": {"none": 0.99, "f=1": f1, "f=0": f0, "i=1": 0.985, "o=1": 0.99}}


def test_gate_paragraph_is_computed_from_the_measurements() -> None:
    text = describe_gates(_gates(f0=0.11, f1=0.95))
    assert "f = 0 (forget everything each step) lowers accuracy to 11.00% (-88.00 points)" in text
    assert "o = 1 (expose the whole cell state) leaves it at 99.00% (+0.00 points)" in text
    assert "relies on most is f: fixing it at 0 costs 88.00 points" in text
    assert "Forgetting every step hurts more than never forgetting" in text
    assert "lowest (0.50) at step 2" in text and "input gate opens most at step 2 (0.60)" in text
    assert "Mean |c| grows from 0.10 at step 1 to 0.30 at step 3 (peak 0.40 at step 2)" in text
    flipped = describe_gates(_gates(f0=0.95, f1=0.11))
    assert "fixing it at 1 costs 88.00 points" in flipped
    assert "Never forgetting hurts more" in flipped
    calm = describe_gates({**_gates(0.99, 0.99), "forced": dict.fromkeys(["none", "f=1", "f=0", "i=1", "o=1"], 0.99)})
    assert "does not depend on any one gate" in calm and "cost about the same" in calm


def test_forced_gates_table_lists_each_ablation_against_the_unforced_model() -> None:
    rows = forced_gates_table(_gates(0.11, 0.95)["forced"]).values.tolist()
    assert rows[0] == ["none (as trained)", "99.00%", ""]
    assert rows[2] == ["f = 0", "11.00%", "-88.00"]


def test_cells_paragraph_says_where_the_rnn_suffices_and_where_it_falls_behind() -> None:
    from search.report.narrative import describe_cells
    from search.report.tables import CellResult, cells_table

    def rows(rnn: list[float]) -> list[CellResult]:
        acc = {"lstm": [0.990, 0.991, 0.989, 0.985], "gru": [0.990, 0.992, 0.990, 0.987], "rnn": rnn}
        return [CellResult(c, a, 1, 1.0, 1, 100, n) for c, accs in acc.items() for n, a in zip((14, 28, 56, 112), accs)]

    text = describe_cells(rows([0.985, 0.990, 0.95, 0.70]))
    assert "at 14 steps the LSTM and GRU tie for best (99.00%)" in text
    assert "suffices (within 0.5 points of the best gated cell) at 14 and 28 steps" in text
    assert "falls behind at 56 and 112 steps, most at 112 steps (28.70 points below, 70.00%)" in text
    assert "gap widens (+0.50 -> +28.70 points)" in text
    flat = describe_cells(rows([0.990, 0.992, 0.990, 0.987]))
    assert "At none of the lengths tried does a gated cell beat it" in flat and "falls behind" not in flat
    assert cells_table(rows([0.985, 0.990, 0.95, 0.70])).values.tolist()[2] == [
        "RNN", "98.50%", "99.00%", "95.00%", "70.00%"]


def test_the_tuning_sentence_says_when_every_cell_got_the_same_config() -> None:
    from search.report.narrative import describe_tuning

    same = {c: {"cell": c, "hidden_size": 117, "lr": 0.0037} for c in ("lstm", "gru", "rnn")}
    assert "the same candidate won for all 3 cells" in describe_tuning(same)
    differ = {**same, "rnn": {"cell": "rnn", "hidden_size": 64, "lr": 0.0037}}
    assert "paired comparison" in describe_tuning(differ) and "won for all" not in describe_tuning(differ)


def test_a_one_seed_report_prints_no_zero_spread(tiny_mnist, tmp_path) -> None:
    from search.report import FinalRunSpec, write_report
    from tests.search.report.conftest import make_study

    spec = FinalRunSpec(seeds=1, data_root=str(tiny_mnist))
    text = write_report(make_study(shrink=True), tmp_path / "r", spec).markdown.read_text()
    assert "± 0.00" not in text and "mean ± std over 1 seed" not in text
    assert text.count("(one seed: spread unknown)") == 2  # V1's and V2's final accuracy
