"""Entry point: `python -m monitored_predictor [flags]` (the image's ENTRYPOINT)."""

from __future__ import annotations

import sys
import warnings

from kserve import ModelServer, model_server

from . import http_hooks
from .artifacts import ModelLoadError
from .cli import SettingError, parse_args, serving_settings
from .model import MonitoredModel

# KServe 0.20 answers with FastAPI's ORJSONResponse, which the pinned FastAPI deprecates with a warning
# that FastAPI's own catch_warnings blocks re-arm on every request: one log line per request otherwise.
warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")


class MonitoredModelServer(ModelServer):
    """KServe's ModelServer, binding its HTTP server to a chosen address instead of always 0.0.0.0."""

    def __init__(self, http_host: str, **kwargs):
        super().__init__(**kwargs)
        self.http_host = http_host

    def setup_event_loop(self):
        # start() has built the uvicorn config by now and binds it only when serving begins.
        if self._rest_server is not None:
            self._rest_server.config.host = self.http_host
        super().setup_event_loop()


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SettingError as exc:
        print(f"monitored_predictor: {exc}", file=sys.stderr)
        return 2
    model = MonitoredModel(args.model_name, args.model_dir, serving_settings(args))
    try:
        model.load()
    except ModelLoadError as exc:
        print(f"monitored_predictor: cannot serve: {exc}", file=sys.stderr)
        return 1
    http_hooks.install(model_server.app, model.metrics, model.name, args.max_body_bytes)
    server = MonitoredModelServer(
        http_host=args.http_host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=args.workers,
        max_threads=args.max_threads,
        max_asyncio_workers=args.max_asyncio_workers,
        enable_grpc=args.enable_grpc,
        enable_docs_url=args.enable_docs_url,
        enable_latency_logging=args.enable_latency_logging,
        access_log_format=args.access_log_format,
        event_loop=args.event_loop,
        timeout_keep_alive=args.timeout_keep_alive,
    )
    server.start([model])
    return 0


if __name__ == "__main__":
    sys.exit(main())
