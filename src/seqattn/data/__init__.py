"""Datasets: where files come from (`files`), and one module per data source."""
