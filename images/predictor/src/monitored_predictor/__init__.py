"""Monitored KServe predictor: serves a scikit-learn model and exports model monitoring metrics."""

__version__ = "0.1.0"
