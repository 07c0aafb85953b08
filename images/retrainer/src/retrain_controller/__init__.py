"""Retrain controller: turns sustained model drift, read from Prometheus, into one Kubernetes Job."""

__version__ = "0.1.0"
