"""`lstm-search report`: V1 vs V2 table, final test-set runs, figures, importances, summary.

One concept per module: collect (study -> rows), retrain (a final run, its spec and its
cache in the study), parallel (final runs side by side in processes), importance (fANOVA
and its sentences), confidence (how sure V2 is), narrative (the sentences read off the
measured numbers), tables (pandas), figures (matplotlib), reproduce (the `train` commands
that rebuild a run), cells (the cell comparison the report shows), markdown (report.md as
a list of sections, and the dashboard note), build (``write_report``, tying them together).
"""

from search.report.build import ReportPaths, write_report
from search.report.retrain import FinalRunSpec

__all__ = ["FinalRunSpec", "ReportPaths", "write_report"]
