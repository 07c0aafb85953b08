"""Drift detector: a KServe payload-logger sink that checks model inputs and outputs for drift."""
