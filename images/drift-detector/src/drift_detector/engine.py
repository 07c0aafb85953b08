"""The statistics engine as the service uses it."""

try:
    from drift_detector.stats import ReferenceProfile
except ImportError:  # DEV ONLY until the engine lands; delete with _engine_dev.py
    from drift_detector._engine_dev import ReferenceProfile

__all__ = ["ReferenceProfile"]
