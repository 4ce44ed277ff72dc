"""`lstm-search report`: V1 vs V2 table, final test-set runs, figures, importances, summary.

One concept per module: collect (study -> rows), retrain (the final runs and their cache),
importance (fANOVA and sentences), tables (pandas), figures (matplotlib), cells (the
cell comparison), markdown (report.md), build (``write_report``, tying them together).
"""

from search.report.build import ReportPaths, write_report

__all__ = ["ReportPaths", "write_report"]
