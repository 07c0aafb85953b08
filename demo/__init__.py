"""`make demo` and the end-to-end tests share this package: stack.py starts the processes, relay.py
stands in for KServe's payload logger, traffic.py makes the traffic, scenario.py reads results back."""
