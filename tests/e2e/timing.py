"""The end-to-end stack's scale and timing: shorter than the demo's, the same shape."""

WINDOW = 100  # rows per drift window
RATE = 60.0  # requests per second, one row each
SCRAPE_SECONDS = 2  # Prometheus scrape and rule evaluation interval (1s would time out on a busy machine)
ALERT_FOR = "8s"  # every alert's `for`: spans ~5 windows at RATE, so one noisy clean window cannot fire
RETRAIN_SUSTAINED_FOR = "6s"
