"""The search service: spaces, objective, studies, reports and the CLI. Uses ``model``."""
