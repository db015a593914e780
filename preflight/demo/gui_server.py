"""The demo's Web GUI: the form-login app the lab also runs (gui_app.py), over real TLS on loopback."""

from __future__ import annotations

import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

from preflight.demo.certificates import make_certificate, pem_pair
from preflight.demo.gui_app import Sessions, make_handler

HANDSHAKE_SECONDS = 10


class _TlsServer(ThreadingHTTPServer):
    """Each connection's TLS handshake runs in its own thread, so one slow client cannot stall the others."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self._context = context

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(HANDSHAKE_SECONDS)
        try:
            tls = self._context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        self.RequestHandlerClass(tls, client_address, cast(Any, self))


def _redirect_to(https_port: int) -> type[BaseHTTPRequestHandler]:
    class RedirectToHttps(BaseHTTPRequestHandler):
        server_version = "preflight-demo"

        def do_GET(self) -> None:
            self.send_response(301)
            self.send_header("Location", f"https://127.0.0.1:{https_port}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return RedirectToHttps


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, valid for a day, as a PBX's own self-signed one would be."""
    certificate, key = make_certificate(
        "demo-pbx.invalid",
        not_before=datetime.now(UTC) - timedelta(minutes=5),
        not_after=datetime.now(UTC) + timedelta(days=1),
        dns_names=("demo-pbx.invalid",),
        ip_addresses=("127.0.0.1",),
    )
    cert_pem, key_pem = pem_pair(certificate, key)
    cert_path, key_path = folder / "demo.crt", folder / "demo.key"
    cert_path.write_text(cert_pem)
    key_path.write_text(key_pem)
    return cert_path, key_path


@contextmanager
def demo_gui_server(username: str, password: str) -> Iterator[tuple[int, int]]:
    """Serve the GUI on 127.0.0.1 until the block ends; yields (http_port, https_port)."""
    with tempfile.TemporaryDirectory(prefix="preflight-demo-tls-") as folder:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*self_signed_certificate(Path(folder)))
    handler = make_handler(username, password, Sessions(), "form")
    quiet_handler = type("QuietGui", (handler,), {"log_message": lambda self, *args: None})
    https = _TlsServer(quiet_handler, context)
    http = ThreadingHTTPServer(("127.0.0.1", 0), _redirect_to(https.server_address[1]))
    http.daemon_threads = True
    threads = [threading.Thread(target=server.serve_forever, args=(0.2,), daemon=True) for server in (https, http)]
    for thread in threads:
        thread.start()
    try:
        yield http.server_address[1], https.server_address[1]
    finally:
        for server in (https, http):
            server.shutdown()
            server.server_close()
