"""A tiny threaded TLS terminator (standard library only) for the egress TLS tests.

Listens on 127.0.0.1 (port 0 = any free port), completes a TLS handshake with the certificate and key
it was given, and relays the plaintext of each accepted connection to a plain TCP target (the
provider stand-in) in both directions until either side closes. Every connection gets its own
thread, so keep-alive connections and many sequential ones work.

    front = TLSFront(("127.0.0.1", standin_port), cert_path, key_path).start()
    ... https://localhost:{front.port} ...
    front.stop()

Counters: `accepted` (TCP connections), `handshakes` (completed TLS handshakes), `handshake_errors`
(a list of short strings, e.g. the alert a client sent when it refused the certificate) and
`server_names` (the SNI names clients sent, None when a client sent none).
"""

from __future__ import annotations

import select
import socket
import ssl
import threading


class TLSFront:
    def __init__(self, target: tuple[str, int], cert_path: str, key_path: str, host: str = "127.0.0.1",
                 port: int = 0):
        self.target = target
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(cert_path), str(key_path))
        self.context.sni_callback = self._sni
        self._listener = socket.create_server((host, port), backlog=128)
        self._lock = threading.Lock()
        self._open: set = set()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="tls-front", daemon=True)
        self.accepted = 0
        self.handshakes = 0
        self.handshake_errors: list = []
        self.server_names: list = []

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    def start(self) -> "TLSFront":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            socks = list(self._open)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self._thread.join(5)

    # ------------------------------------------------------------------------------------------

    def _sni(self, sslobj, server_name, context):
        with self._lock:
            self.server_names.append(server_name)
        return None

    def _track(self, s, add: bool) -> None:
        with self._lock:
            (self._open.add if add else self._open.discard)(s)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                break
            with self._lock:
                self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), name="tls-front-conn", daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        self._track(raw, True)
        tls = upstream = None
        try:
            raw.settimeout(30)
            try:
                tls = self.context.wrap_socket(raw, server_side=True)  # handshakes here
            except (ssl.SSLError, OSError) as e:
                with self._lock:
                    self.handshake_errors.append(f"{type(e).__name__}: {e}")
                return
            self._track(tls, True)
            with self._lock:
                self.handshakes += 1
            upstream = socket.create_connection(self.target, timeout=30)
            self._track(upstream, True)
            tls.settimeout(300)
            upstream.settimeout(300)
            if self._relay(tls, upstream):
                # the target closed: end the TLS session properly (close_notify), as a server would
                tls.settimeout(2)
                try:
                    tls.unwrap()
                except (ssl.SSLError, OSError, ValueError):
                    pass
        except OSError:
            pass
        finally:
            for s in (upstream, tls, raw):
                if s is not None:
                    self._track(s, False)
                    try:
                        s.close()
                    except OSError:
                        pass

    @staticmethod
    def _relay(tls: ssl.SSLSocket, upstream: socket.socket) -> bool:
        """Relays until one side closes; True when the target closed first."""
        socks = [tls, upstream]
        while True:
            # decrypted bytes already buffered in the TLS object are invisible to select
            if tls.pending():
                readable = [tls]
            else:
                readable, _, broken = select.select(socks, [], socks, 300)
                if broken or not readable:
                    return False
            for s in readable:
                try:
                    data = s.recv(65536)
                except ssl.SSLWantReadError:  # a non-data record (no plaintext yet)
                    continue
                if not data:
                    return s is upstream
                (upstream if s is tls else tls).sendall(data)
