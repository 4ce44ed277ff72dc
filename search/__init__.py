"""The search service: spaces, objective, studies, reports and the CLI. Uses ``model``."""

import warnings

import optuna

# The service uses some APIs Optuna marks experimental, on purpose: heartbeats with the
# retry callback and fail_stale_trials (a killed worker's trial is re-queued), the study's
# metric names (the dashboard's "val_accuracy") and the matplotlib plots of the report.
# Their "may change in the future" warning would only be noise in every command's output,
# so it is silenced once here, for every module of the package and every script (benchmarks
# included) that imports it. pyproject.toml repeats the filter for pytest, which resets
# warning filters around each test.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
