"""Reaching a protected Prometheus: TLS with a private CA (a real prometheus with --web.config.file)
and a bearer token checked by an authenticating reverse proxy in front of the real prometheus,
the way kube-rbac-proxy guards Prometheus in OpenShift."""

from __future__ import annotations

import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import PROMETHEUS, free_port, wait_ready
from retrain_controller.cli import main
from test_prometheus import decisions_by_model, json_lines

TOKEN = "s3cret-token"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def tls_prometheus(tmp_path_factory):
    root = tmp_path_factory.mktemp("tls-prometheus")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=retrainer-test-ca",
        cwd=root,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
        cwd=root,
    )
    (root / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        cwd=root,
    )
    web = root / "web.yml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {root / 'server.crt'}\n  key_file: {root / 'server.key'}\n"
    )
    config = root / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\n")
    port = free_port()
    log = root / "prometheus.log"
    with log.open("w") as handle:
        proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--web.config.file={web}",
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    url = f"https://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log, context=ssl.create_default_context(cafile=str(root / "ca.crt")))
        yield url, str(root / "ca.crt")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


pytestmark = pytest.mark.usefixtures("pass_environment")


def test_https_prometheus_with_the_ca_file(tls_prometheus, capsys):
    url, ca = tls_prometheus
    assert main(["check", "--dry-run", "--prometheus-url", url, "--ca-file", ca]) == 0
    assert "no model over the threshold" in capsys.readouterr().err


def test_https_prometheus_without_the_ca_exits_2(tls_prometheus, capsys):
    url, _ = tls_prometheus
    assert main(["check", "--dry-run", "--prometheus-url", url]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .startswith(f"retrain-controller: prometheus: TLS error talking to {url}")
    )


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_insecure_skip_verify_accepts_the_unknown_ca(tls_prometheus, monkeypatch):
    url, _ = tls_prometheus
    monkeypatch.setenv("RETRAINER_INSECURE_SKIP_VERIFY", "true")
    assert main(["check", "--dry-run", "--prometheus-url", url]) == 0


@pytest.fixture
def token_proxy(prometheus):
    """Forwards to the real prometheus only with `Authorization: Bearer <TOKEN>`, else 401."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._reply(401, b'{"status":"error","errorType":"unauthorized","error":"bad token"}')
                return
            try:
                with urllib.request.urlopen(prometheus.url + self.path, timeout=10) as upstream:
                    self._reply(upstream.status, upstream.read())
            except urllib.error.HTTPError as err:
                self._reply(err.code, err.read())

        def _reply(self, status, body):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", prometheus.at
    server.shutdown()
    server.server_close()


def test_the_bearer_token_file_is_sent(token_proxy, tmp_path, capsys):
    url, at = token_proxy
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    assert (
        main(
            [
                "check",
                "--dry-run",
                "--prometheus-url",
                url,
                "--at",
                str(at),
                "--bearer-token-file",
                str(token),
            ]
        )
        == 0
    )
    decisions = decisions_by_model(json_lines(capsys.readouterr().err))
    assert decisions[("ml", "sustained")]["action"] == "create"


def test_a_wrong_token_exits_2_with_the_answer(token_proxy, tmp_path, capsys):
    url, at = token_proxy
    token = tmp_path / "token"
    token.write_text("stale")
    assert (
        main(
            [
                "check",
                "--dry-run",
                "--prometheus-url",
                url,
                "--at",
                str(at),
                "--bearer-token-file",
                str(token),
            ]
        )
        == 2
    )
    assert "unauthorized: bad token" in capsys.readouterr().err


def test_a_token_file_lost_after_start_exits_1(token_proxy, tmp_path, capsys, monkeypatch):
    """Checked at start (config error), re-read every pass: losing it later is a config error too."""
    import retrain_controller.prometheus as prometheus_module

    url, at = token_proxy
    token = tmp_path / "token"
    token.write_text(TOKEN)
    reads = []
    real_read = prometheus_module._read_token

    def read_then_remove(path):
        reads.append(path)
        value = real_read(path)
        if len(reads) == 1:
            token.unlink()  # gone after the start-up check
        return value

    monkeypatch.setattr(prometheus_module, "_read_token", read_then_remove)
    code = main(
        ["check", "--dry-run", "--prometheus-url", url, "--at", str(at), "--bearer-token-file", str(token)]
    )
    assert code == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .startswith("retrain-controller: invalid config prometheus.bearerTokenFile: cannot read")
    )
