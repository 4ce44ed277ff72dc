"""The report's structure is data: sections are numbered from their place in
``markdown.SECTIONS``, prose points to a section by the number it is rendered with, and
the dashboard note is built from the report's content, section for section as report.md
shows it."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from search.report import FinalRunSpec, ReportPaths, markdown, write_report
from tests.search.report.conftest import make_study


@pytest.fixture(scope="module")
def cached_study(tiny_mnist: Path, tmp_path_factory: pytest.TempPathFactory) -> optuna.Study:
    """A study whose final runs (2 seeds) are cached, so each report below trains nothing."""
    study = make_study(shrink=True)
    write_report(study, tmp_path_factory.mktemp("first"), FinalRunSpec(seeds=2, data_root=str(tiny_mnist)))
    return study


def _report(study: optuna.Study, out: Path, tiny_mnist: Path) -> ReportPaths:
    paths = write_report(study, out, FinalRunSpec(seeds=2, data_root=str(tiny_mnist)))
    assert paths.retrained == ()
    return paths


def _headings(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("## ")]


def test_sections_are_numbered_in_list_order_and_prose_follows_the_numbers(
    cached_study: optuna.Study, tiny_mnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = _report(cached_study, tmp_path / "as-is", tiny_mnist).markdown.read_text()
    assert _headings(text) == [f"## {n}. {s.title}" for n, s in enumerate(markdown.SECTIONS, 1)]
    assert "The other seeds of section 2 are the same commands" in text

    # Reversed, the final evaluation is section 6 and the hyperparameters section says so.
    monkeypatch.setattr(markdown, "SECTIONS", markdown.SECTIONS[::-1])
    text = _report(cached_study, tmp_path / "reversed", tiny_mnist).markdown.read_text()
    assert _headings(text)[0] == "## 1. Simple RNN or LSTM?"
    assert "## 6. Final evaluation on the test set" in _headings(text)
    assert "The other seeds of section 6 are the same commands" in text
    assert "section 2" not in text

    # A section dropped from the list is gone, and the ones after it move up.
    kept = tuple(s for s in markdown.SECTIONS[::-1] if s.title != "Figures")
    monkeypatch.setattr(markdown, "SECTIONS", kept)
    text = _report(cached_study, tmp_path / "dropped", tiny_mnist).markdown.read_text()
    assert _headings(text) == [f"## {n}. {s.title}" for n, s in enumerate(kept, 1)]
    assert "![loss and accuracy curves]" not in text


def _blocks(note: str) -> tuple[str, list[str]]:
    """The note's title line and its "## " blocks, each stripped."""
    head, *blocks = note.split("\n\n## ")
    return head, [f"## {b.strip()}" for b in blocks]


def test_the_note_holds_the_marked_sections_as_report_md_shows_them(
    cached_study: optuna.Study, tiny_mnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    paths = _report(cached_study, tmp_path / "r", tiny_mnist)
    text = paths.markdown.read_text()
    head, blocks = _blocks(paths.note)
    assert head == text.splitlines()[0] == "# Hyperparameter search report: study `hand`"
    assert [b.splitlines()[0] for b in blocks] == [
        "## 1. Hyperparameters: V1 vs V2", "## Final test accuracy", "## 5. Study summary"]
    # Each section whole, word for word as report.md has it up to the next section.
    sections = {f"## {s}".split("\n", 1)[0]: f"## {s}".strip() for s in text.split("\n## ")[1:]}
    assert blocks[0] == sections["## 1. Hyperparameters: V1 vs V2"]
    assert blocks[2] == sections["## 5. Study summary"]
    assert "| Hyper-parameter" in blocks[0] and "How sure" in blocks[0] and "![" not in paths.note
    # The final accuracies: the two bullets of the final evaluation, nothing else of it.
    finals = blocks[1].splitlines()[2:]
    assert [line.split(":")[0] for line in finals] == ["- **V1 test accuracy", "- **V2 test accuracy"]
    assert all(line in sections["## 2. Final evaluation on the test set"].splitlines() for line in finals)

    # Which sections go to the note is a flag of the section, and its number is the report's.
    moved = (markdown.SECTIONS[4], *markdown.SECTIONS[:4], *markdown.SECTIONS[5:])
    monkeypatch.setattr(markdown, "SECTIONS", moved)
    paths = _report(cached_study, tmp_path / "moved", tiny_mnist)
    assert [b.splitlines()[0] for b in _blocks(paths.note)[1]] == [
        "## 1. Study summary", "## Final test accuracy", "## 2. Hyperparameters: V1 vs V2"]
