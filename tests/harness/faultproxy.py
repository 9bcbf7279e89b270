"""A small HTTP proxy in front of one real OpenStack API endpoint that answers ONE chosen request
with an error (500, 409...) instead of forwarding it: a fault injected at the process boundary.

Everything else is forwarded unchanged to the real service, so the test drives the real API and
only the one request fails, as a cloud that hiccups mid-way would. Point a clouds.yaml entry at it
with `<service>_endpoint_override` (e.g. `network_endpoint_override`).

    with FaultProxy("http://127.0.0.1:9696") as proxy:
        proxy.fail("POST", r"^/v2.0/ports$", nth=3, status=500)
        ...  # the third port create gets HTTP 500; the rest reach Neutron
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "content-length"}


@dataclass
class Fault:
    method: str
    path: re.Pattern
    nth: int  # the nth matching request fails (1 = the first)
    status: int
    message: str
    seen: int = 0
    fired: list[str] = field(default_factory=list)  # the paths it answered


class FaultProxy:
    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target_host = parts.hostname or "127.0.0.1"
        self.target_port = parts.port or 80
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status answered)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy._match(self.command, self.path)
                if fault is not None:
                    data = json.dumps({"NeutronError": {"type": "InjectedFault", "message": fault.message,
                                                        "detail": ""}}).encode()
                    self.send_response(fault.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    proxy._log(self.command, self.path, fault.status)
                    return
                conn = http.client.HTTPConnection(proxy.target_host, proxy.target_port, timeout=120)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in HOP_BY_HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                proxy._log(self.command, self.path, resp.status)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="fault-proxy", daemon=True)

    def fail(self, method: str, path: str, *, nth: int = 1, status: int = 500, message: str = "injected") -> Fault:
        """Answer the nth request matching (method, path regex; the query string is not part of it)."""
        fault = Fault(method.upper(), re.compile(path), nth, status, message)
        with self._lock:
            self.faults.append(fault)
        return fault

    def _match(self, method: str, raw_path: str) -> Fault | None:
        path = urlsplit(raw_path).path
        with self._lock:
            for f in self.faults:
                if f.method == method and f.path.search(path) and len(f.fired) == 0:
                    f.seen += 1
                    if f.seen == f.nth:
                        f.fired.append(path)
                        return f
        return None

    def _log(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.requests.append((method, urlsplit(path).path, status))

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
