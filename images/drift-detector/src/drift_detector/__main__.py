"""python -m drift_detector: the drift detector service; `batch` and `import` subcommands for logs in
blob storage (drift_detector.batch)."""

from __future__ import annotations

import gc
import logging
import sys

from drift_detector.config import ConfigError, load_settings


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["batch"]:  # the batch job over blob-storage logs (drift_detector.batch)
        from drift_detector.batch.cli import main as batch_main

        return batch_main(argv[1:])
    if argv[:1] == ["import"]:  # posts batch results to a running service
        from drift_detector.batch.upload import main as import_main

        return import_main(argv[1:])
    try:
        settings = load_settings(argv)
    except ConfigError as exc:
        print(f"drift_detector: {exc}", file=sys.stderr)
        return 2
    if not settings.reference.exists():
        print(f"drift_detector: reference file not found: {settings.reference}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    import uvicorn

    from drift_detector.app import App
    from drift_detector.service import Service

    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.reports_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"drift_detector: cannot create data or reports directory: {exc}", file=sys.stderr)
        return 2
    # Python's default 5 ms GIL switch interval, on purpose: at 0.5 ms the checker and fsync threads took
    # the GIL from the event loop ten times as often, which cost CPU per logger event (bench_agent, see
    # the README); the price is that a durable commit's answer may wait up to 5 ms for a busy loop.
    app = App(Service(settings))
    # What is loaded by now (pandas, scipy, uvicorn: ~110,000 objects the collector tracks) lives as
    # long as the process. Frozen, a full collection no longer walks it; with the prediction store's
    # tuples (state.py) its stalls of the event loop went from 92-173 to 6-23 ms (the README's bench notes).
    gc.freeze()
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
        # Nothing here reads client addresses or needs Server/Date headers: skip that work per request.
        proxy_headers=False,
        server_header=False,
        date_header=False,
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
