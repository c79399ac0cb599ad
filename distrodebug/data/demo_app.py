"""distrodebug demo app: a tiny web service to debug inside a shell-less python image.

GET / answers a short text, GET /healthz answers "ok"; one line per request goes to stderr.
Standard library only, because the image has nothing else.
"""

from __future__ import annotations

import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType


class Handler(BaseHTTPRequestHandler):
    server_version = "distrodebug-demo/1"

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._answer(200, "ok\n")
        elif self.path == "/":
            self._answer(200, "hello from the distrodebug demo app (no shell in here)\n")
        else:
            self._answer(404, "not found\n")

    def _answer(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.client_address[0]} {format % args}\n")
        sys.stderr.flush()


def _stop(signum: int, frame: FrameType | None) -> None:
    # As PID 1 the default SIGTERM action is ignored by the kernel: exit on our own.
    raise SystemExit(0)


def main() -> None:
    port = int(os.environ.get("PORT", "8080"))
    signal.signal(signal.SIGTERM, _stop)
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    sys.stderr.write(f"demo app listening on 0.0.0.0:{port}\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
