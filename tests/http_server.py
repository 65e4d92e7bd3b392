"""A real HTTP server on 127.0.0.1 for download tests: it serves a folder under URL prefixes that
choose its behaviour. /ok/NAME serves the file, /lying/NAME claims a Content-Length larger than the
body it sends, /short/NAME sends the first half of the file under the whole file's length, /garbage/NAME answers with something that is not HTTP, anything else is a 404.
No test reaches a real host (conftest refuses other addresses)."""
from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.served.append(self.path)  # on arrival, before the client can see any reply
        mode, _, name = self.path.lstrip("/").partition("/")
        path = self.server.folder / name
        if mode not in ("ok", "lying", "short", "garbage") or "/" in name or not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        if mode == "garbage":  # not an HTTP reply at all
            self.wfile.write(b"NOT HTTP AT ALL\r\n\r\n" + body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body) + (100 if mode == "lying" else 0)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if mode == "short" else body)

    def log_message(self, *args):  # keep the test output quiet
        pass


class Server:
    def __init__(self, folder: Path):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.folder, self.httpd.served = folder, []
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def url(self, mode: str = "ok") -> str:
        return f"http://127.0.0.1:{self.port}/{mode}/"

    @property
    def served(self) -> list[str]:
        return self.httpd.served

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def served(tmp_path):
    """A folder of files to serve, and the server serving it (shut down at the end)."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = Server(folder)
    yield folder, server
    server.close()
    assert not server.thread.is_alive()
