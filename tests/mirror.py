"""A local download mirror for the dataset tests (no test needs the internet): an http.server
on 127.0.0.1 in a thread, serving generated files, and a URL that refuses connections."""

from __future__ import annotations

import http.server
import socket
import threading


class Mirror:
    """Serves ``files`` (name -> bytes) as /good/NAME, corrupted copies as /corrupt/NAME and 404
    elsewhere; ``requests`` records every path asked for. ``mode`` changes what /good/ serves:
    "good", "html" (a captive portal's page with status 200) or "cut" (the connection closed
    halfway through the body). A context manager; ``close`` may be called early."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.mode = "good"
        self.requests: list[str] = []
        self.closed = False
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                owner.requests.append(self.path)
                prefix, _, name = self.path.lstrip("/").partition("/")
                body = owner.files.get(name)
                if body is not None and prefix == "corrupt":
                    body = body[:-10] + b"corrupted!"
                if body is None or prefix not in ("good", "corrupt"):
                    self.send_error(404, "Not Found")
                    return
                if owner.mode == "html":
                    body = b"<html><body>Please log in</body></html>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if owner.mode == "cut" else body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:  # idempotent: a test may close it early
        if self.closed:
            return
        self.closed = True
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()

    def __enter__(self) -> Mirror:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def dead_url() -> str:
    """A URL whose port refuses connections (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/data/"
