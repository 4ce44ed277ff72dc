"""How sure the study is of V2: the configurations statistically tied with it, and V2 lite.

The rules (what a score's ± means, which configuration is V2, what "tied" means) live in
search/best.py; this module only words them for report.md (and, through the
hyperparameters section, the dashboard note).
"""

from __future__ import annotations

import pandas as pd

from search.best import TIE_Z, Best, ConfigScore
from search.report import reproduce, tables

__all__ = ["confidence_lines", "tied_table"]


def tied_table(best: Best) -> pd.DataFrame:
    """One row per configuration tied with V2 (V2 first): its runs, score, size and speed."""
    rows = []
    for s in best.tied:
        name = f"{s.number}" + (" (V2)" if s is best.v2 else "") + (" (V2 lite)" if s is best.lite
                                                                   and s is not best.v2 else "")
        rows.append((
            name, ", ".join(map(str, s.runs)), s.text(),
            "" if s.std is None else f"{100 * s.std:.2f}",
            "" if s.parameters is None else f"{s.parameters:,}",
            "" if s.epoch_seconds is None else f"{s.epoch_seconds:.1f}",
            "" if s.train_seconds is None else f"{s.train_seconds / 60:.1f}",
        ))
    return pd.DataFrame(rows, columns=["trial", "runs (trials)", "val acc (mean ± SE)", "std over runs (points)",
                                       "parameters", "seconds / epoch", "training (min)"])


def confidence_lines(best: Best, study: str, storage_url: str | None = None,
                     subset: int | None = None) -> list[str]:
    """The markdown subsection: the rule in one paragraph, the tied table, V2 lite."""
    v2 = best.v2
    confirmed = v2.n > 1
    lines = [
        "### How sure: V2 and the configurations tied with it", "",
        _rule(best), "",
        f"V2 (trial {v2.number}) scored **{v2.text()}** on validation"
        + (f", over its original run and {v2.n - 1} repeat(s) with other training seeds." if confirmed
           else " in its single run: the study holds no repeats of it (launched with --no-confirm, the "
           "confirmation phase has not run yet, or the time budget had no room for a repeat of it), so this "
           "value is also the luckiest draw of the search "
           "and likely overstates its test accuracy."),
        "",
    ]
    others = len(best.tied) - 1
    if others == 0:
        return [*lines, "No other configuration is tied with it: the data tell V2 apart from the rest.", ""]
    lines += [
        (f"{others} other configuration(s) are statistically tied with V2 (the validation data cannot tell "
         "them apart); any of them is as good a pick on this evidence:"), "",
        tables.to_markdown(tied_table(best)), "",
    ]
    return lines + _lite(best.lite, best.v2, study, storage_url, subset)


def _rule(best: Best) -> str:
    size = best.v2.val_size
    split = f"{size:,} validation images" if size else "the validation images"
    return (
        f"Each score is ± one standard error: for one run the binomial error of {split} "
        "(sqrt(p(1-p)/n)); for a configuration run k times (repeats with other training seeds, "
        "user attr `repeat_of`), the spread over its runs (not below the one-run error) / sqrt(k). "
        f"Two configurations are *tied* when their means differ by at most {TIE_Z:g} standard errors of "
        "the difference (sqrt(se1² + se2²)), either way round. V2 is, among the configurations tied with "
        "the best mean, the best mean of those confirmed (run two or more times), else the best mean. "
        "V2 lite is the tied configuration with the fewest parameters (then the least training time)."
    )


def _lite(lite: ConfigScore, v2: ConfigScore, study: str, storage_url: str | None,
          subset: int | None) -> list[str]:
    if lite is v2:
        return ["V2 is itself the cheapest of them (V2 lite = V2).", ""]
    cfg = lite.train_config
    lines = [
        f"**V2 lite: trial {lite.number}**, {lite.text()} on validation with "
        f"{lite.parameters:,} parameters (V2: {v2.parameters:,})"
        + (f" and {lite.train_seconds / 60:.1f} min of training (V2: {v2.train_seconds / 60:.1f})"
           if lite.train_seconds is not None and v2.train_seconds is not None else "")
        + ". To train it on all the training images and score it on the test set:", "",
        "```sh",
    ]
    if cfg is not None:
        lines.append(reproduce.train_command(cfg, subset))
    lines.append(reproduce.trial_command(study, lite.number, storage_url))
    return [*lines, "```", ""]
