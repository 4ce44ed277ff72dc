"""The report's generated sentences: each states what this run's numbers show.

No sentence here is fixed text with numbers slotted in regardless: which gate matters
most, whether a difference exceeds the seed spread, where the simple RNN falls behind,
all come from comparisons of the measured values, so other numbers give other words.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any, NamedTuple

__all__ = [
    "NEGLIGIBLE_POINTS", "SUFFICES_POINTS", "Spread", "describe_cells", "describe_gates", "describe_seeds",
    "describe_tuning", "spread",
]

NEGLIGIBLE_POINTS = 0.05  # a change in accuracy smaller than this (5 of 10,000 images) is "no change"


class Spread(NamedTuple):
    values: list[float]  # test accuracies (fractions), one per seed
    mean: float
    std: float  # sample standard deviation (n - 1); nan with one seed: one run has no spread

    def text(self) -> str:
        """"98.79 ± 0.05%" (percent), the form the report prints everywhere; with one seed
        "98.53% (one seed: spread unknown)", since "± 0.00" would claim a spread of zero."""
        if len(self.values) < 2:
            return f"{100 * self.mean:.2f}% (one seed: spread unknown)"
        return f"{100 * self.mean:.2f} ± {100 * self.std:.2f}%"


def spread(values: Sequence[float]) -> Spread:
    values = list(values)
    std = statistics.stdev(values) if len(values) > 1 else math.nan
    return Spread(values, statistics.fmean(values), std)


def describe_seeds(v1: Spread, v2: Spread) -> str:
    """Whether V2 - V1 is larger than the seed-to-seed spread, in plain words.

    The difference of the means counts as larger than the spread only when it exceeds the
    two standard deviations added (the ±1 std intervals do not overlap) and every seed of
    the better config beats every seed of the other; otherwise it is within the spread.
    """
    n = len(v1.values)
    diff = 100 * (v2.mean - v1.mean)
    if n < 2 or len(v2.values) < 2:
        return (f"V2 - V1 is {diff:+.2f} points from one seed each; with one seed the spread between "
                "seeds is unknown, so this difference may be luck (run the report with --seeds 3).")
    spread_pts = 100 * (v1.std + v2.std)
    better, worse = (v2, v1) if v2.mean >= v1.mean else (v1, v2)
    names = ("V2", "V1") if better is v2 else ("V1", "V2")
    separated = min(better.values) > max(worse.values)
    ranking = (f"every {names[0]} seed beats every {names[1]} seed" if separated
               else f"some {names[1]} seed does at least as well as some {names[0]} seed")
    if abs(diff) > spread_pts and separated:
        return (f"V2 - V1 is {diff:+.2f} points, **larger than the seed spread**: the two standard "
                f"deviations add up to {spread_pts:.2f} points and {ranking}, so over {n} seeds the "
                "difference is not seed luck.")
    return (f"V2 - V1 is {diff:+.2f} points, **within the seed spread**: the two standard deviations "
            f"add up to {spread_pts:.2f} points and {ranking}, so over {n} seeds this difference cannot "
            "be told apart from luck.")


def describe_gates(gates: dict[str, Any]) -> str:
    """One paragraph on what V2's gates do, from its measured means and ablations."""
    means, forced = gates["means"], gates["forced"]
    base = forced["none"]
    T = len(means["f"])

    def pts(key: str) -> float:
        return 100 * (forced[key] - base)

    ablations = sorted((k for k in forced if k != "none"), key=pts)
    parts = [f"Unforced, V2 classifies {100 * base:.2f}% of the test images."]
    effects = [f"{_gate_phrase(k)} {_effect(pts(k), forced[k])}" for k in ablations]
    parts.append("Forcing " + "; ".join(effects) + ".")
    worst = ablations[0]
    if pts(worst) < -NEGLIGIBLE_POINTS:
        parts.append(f"So the gate V2 relies on most is {worst.split('=')[0]}: fixing it at "
                     f"{worst.split('=')[1]} costs {-pts(worst):.2f} points.")
    else:
        parts.append("No single forced gate costs V2 more than "
                     f"{NEGLIGIBLE_POINTS:g} points: it does not depend on any one gate varying.")
    if "f=0" in forced and "f=1" in forced:
        gap = 100 * (forced["f=1"] - forced["f=0"])
        if gap > NEGLIGIBLE_POINTS:
            parts.append("Forgetting every step hurts more than never forgetting: the answer depends on "
                         "steps seen earlier, carried in c.")
        elif gap < -NEGLIGIBLE_POINTS:
            parts.append("Never forgetting hurts more than forgetting every step: letting c sum every step "
                         "without decay swamps the cell more than losing the earlier steps does.")
        else:
            parts.append("Forgetting every step and never forgetting cost about the same.")
    f_lo = min(range(T), key=lambda t: means["f"][t])
    f_hi = max(range(T), key=lambda t: means["f"][t])
    i_hi = max(range(T), key=lambda t: means["i"][t])
    c_hi = max(range(T), key=lambda t: means["abs_c"][t])
    parts.append(
        f"The forget gate averages {means['f'][0]:.2f} at step 1 and {means['f'][-1]:.2f} at step {T}, "
        f"lowest ({means['f'][f_lo]:.2f}) at step {f_lo + 1} and highest ({means['f'][f_hi]:.2f}) at "
        f"step {f_hi + 1}; the input gate opens most at step {i_hi + 1} ({means['i'][i_hi]:.2f}); the output "
        f"gate moves between {min(means['o']):.2f} and {max(means['o']):.2f}."
    )
    trend = "grows" if means["abs_c"][-1] > means["abs_c"][0] else "shrinks"
    parts.append(
        f"Mean |c| {trend} from {means['abs_c'][0]:.2f} at step 1 to {means['abs_c'][-1]:.2f} at step {T} "
        f"(peak {means['abs_c'][c_hi]:.2f} at step {c_hi + 1})."
    )
    return " ".join(parts)


def _effect(points: float, acc: float) -> str:
    if points < -NEGLIGIBLE_POINTS:
        return f"lowers accuracy to {100 * acc:.2f}% ({points:+.2f} points)"
    if points > NEGLIGIBLE_POINTS:
        return f"raises it to {100 * acc:.2f}% ({points:+.2f} points)"
    return f"leaves it at {100 * acc:.2f}% ({points:+.2f} points)"


def _gate_phrase(key: str) -> str:
    gate, value = key.split("=")
    meaning = {("f", "0"): "forget everything each step", ("f", "1"): "never forget",
               ("i", "1"): "write every candidate in full", ("o", "1"): "expose the whole cell state",
               ("i", "0"): "write nothing", ("o", "0"): "expose nothing"}.get((gate, value))
    return f"{gate} = {value}" + (f" ({meaning})" if meaning else "")


SUFFICES_POINTS = 0.5  # the simple RNN "suffices" at a length when within this of the best cell


def describe_tuning(tuned: dict[str, dict[str, Any]]) -> str:
    """Why the cells' tuned configs may coincide: their studies share one sampler seed."""
    text = ("Every cell's study samples with the same seed, so while TPE still draws at random "
            "(its first 10 trials) each cell is offered the same candidate configurations: a "
            "paired comparison.")
    others = {repr(sorted((k, v) for k, v in cfg.items() if k != "cell")) for cfg in tuned.values()}
    if len(tuned) > 1 and len(others) == 1:
        text += (f" Here the same candidate won for all {len(tuned)} cells, so the tables compare "
                 "the cells at one configuration.")
    return text


def describe_cells(results: list[Any]) -> str:
    """Where the simple RNN keeps up with the gated cells and where it falls behind.

    ``results``: CellResult rows (cell, test_acc, steps, ...). The RNN suffices at a
    sequence length when its test accuracy is within SUFFICES_POINTS of the best cell's.
    """
    steps = sorted({r.steps for r in results})
    acc = {(r.cell, r.steps): r.test_acc for r in results}
    cells = list(dict.fromkeys(r.cell for r in results))
    parts = []
    for n in steps:
        here = [c for c in cells if (c, n) in acc]
        top = max(acc[c, n] for c in here)
        best = [c.upper() for c in here if acc[c, n] == top]
        verb = "is best" if len(best) == 1 else "tie for best"
        parts.append(f"at {n} steps the {_listing(best)} {verb} ({100 * top:.2f}%)")
    text = "Measured: " + "; ".join(parts) + "."
    if "rnn" not in cells or len(cells) < 2:
        return text
    gaps = {}
    for n in steps:
        gated = [acc[c, n] for c in cells if c != "rnn" and (c, n) in acc]
        if ("rnn", n) in acc and gated:
            gaps[n] = round(100 * (max(gated) - acc["rnn", n]), 2)  # as printed: 0.50 is 0.50
    enough = [n for n, g in gaps.items() if g <= SUFFICES_POINTS]
    behind = [n for n, g in gaps.items() if g > SUFFICES_POINTS]
    if enough:
        text += (f" The simple RNN suffices (within {SUFFICES_POINTS:g} points of the best gated cell) at "
                 f"{_listing(enough)} steps.")
    if behind:
        worst = max(behind, key=lambda n: gaps[n])
        text += (f" The simple RNN falls behind at {_listing(behind)} steps, most at {worst} steps "
                 f"({gaps[worst]:.2f} points below, {100 * acc['rnn', worst]:.2f}%).")
    if not behind:
        text += " At none of the lengths tried does a gated cell beat it by more than that."
    elif not enough:
        text += f" At no length tried does it come within {SUFFICES_POINTS:g} points of the gated cells."
    if len(gaps) > 1:
        first, last = min(gaps), max(gaps)
        trend = "widens" if gaps[last] > gaps[first] else "narrows" if gaps[last] < gaps[first] else "stays"
        text += (f" From {first} to {last} steps the RNN's gap {trend} ({gaps[first]:+.2f} -> "
                 f"{gaps[last]:+.2f} points)")
        text += (": the longer the sequence, the more the gates' memory matters." if trend == "widens"
                 else ".")
    return text


def _listing(values: Sequence[object]) -> str:
    words = [str(v) for v in values]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
