"""A tiny threaded HTTP forward proxy (standard library only) for the egress tests.

Handles absolute-form requests (`GET http://host:port/path HTTP/1.1`, what a proxy receives for
http:// upstreams when the client does not tunnel) and `CONNECT host:port` tunnels, and counts what it
served in `ForwardProxy.served` (a list of (kind, target) tuples, kind "absolute" or "connect").

    proxy = ForwardProxy(); proxy.start(); ... proxy.url ...; proxy.stop()
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_HOP = {"connection", "proxy-connection", "keep-alive", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _record(self, kind: str, target: str) -> None:
        with self.server.lock:
            self.server.served.append((kind, target))

    # CONNECT host:port -> a raw tunnel
    def do_CONNECT(self):
        host, _, port = self.path.rpartition(":")
        self._record("connect", self.path)
        host = host.strip("[]")
        host = self.server.resolve.get(host.lower(), host)
        try:
            upstream = socket.create_connection((host, int(port)), timeout=30)
        except OSError as e:
            self.send_error(502, f"cannot reach {self.path}: {e}")
            return
        self.send_response(200, "Connection Established")
        self.end_headers()
        self.wfile.flush()
        client = self.connection
        socks = [client, upstream]
        try:
            while True:
                r, _, x = select.select(socks, [], socks, 120)
                if x or not r:
                    break
                done = False
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        done = True
                        break
                    (upstream if s is client else client).sendall(data)
                if done:
                    break
        except OSError:
            pass
        finally:
            upstream.close()
            self.close_connection = True

    def _absolute(self):
        target = self.path
        parts = urllib.parse.urlsplit(target)
        if parts.scheme != "http" or not parts.hostname:
            self.send_error(400, f"not an absolute-form http URL: {target}")
            return
        self._record("absolute", target)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        try:
            conn.request(self.command, path, body=body, headers=headers)
            resp = conn.getresponse()
        except OSError as e:
            self.send_error(502, f"upstream failed: {e}")
            return
        self.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in _HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while True:
            chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536)
            if not chunk:
                break
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        conn.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _absolute


class ForwardProxy:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, resolve: dict | None = None):
        """`resolve`: host name -> address for CONNECT targets (names no resolver knows)."""
        self.server = ThreadingHTTPServer((host, port), _Handler)
        self.server.daemon_threads = True
        self.server.resolve = {k.lower(): v for k, v in (resolve or {}).items()}
        self.server.served = []
        self.server.lock = threading.Lock()
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.server.server_address[0]}:{self.port}"

    @property
    def served(self) -> list:
        with self.server.lock:
            return list(self.server.served)

    def start(self) -> "ForwardProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
