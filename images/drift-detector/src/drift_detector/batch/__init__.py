"""Batch mode: drift results over KServe's blob-storage payload logs, window by window as online.

`python -m drift_detector batch` reads the objects the agent writes (`--log-store-path`, parquet or
json), decodes every record with the service's decoder, joins and windows them with the service's
state machine and checks each window with the service's evaluator, on a local or a Spark engine.
"""
