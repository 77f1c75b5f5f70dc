"""A real local HTTP server for tests: records what it receives, answers as told."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# (path, body, headers) -> (status, json body)
Responder = Callable[[str, Any, dict[str, str]], tuple[int, Any]]


def _ok(path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    return 200, {"ok": True}


class Receiver:
    def __init__(self, responder: Responder = _ok) -> None:
        self.received: list[Any] = []
        self.requests: list[tuple[str, Any, dict[str, str]]] = []
        self.raw: list[bytes] = []
        self.responder = responder
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                headers = {k: v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.received.append(body)
                    receiver.raw.append(raw)
                    receiver.requests.append((self.path, body, headers))
                status, answer = receiver.responder(self.path, body, headers)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
