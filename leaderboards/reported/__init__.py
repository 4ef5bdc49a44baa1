"""The published numbers (CSV files, their sources and split sizes), installed with wsolbench as
``wsolbench.reported`` (pyproject.toml's ``package-dir``); read by ``wsolbench.report.reported``."""
