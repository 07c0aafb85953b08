"""`make demo` and the end-to-end tests share this package: stack.py starts the processes, agent.py runs
KServe's agent (the payload logger) in front of the predictor, traffic.py makes the traffic, scenario.py
reads results back."""
