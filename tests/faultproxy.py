"""A TCP proxy on loopback that breaks uploads or new connections on purpose.

It sits between boto3 and moto's S3 server. While ``cut_puts`` is positive, each new
connection whose first request is a ``PUT`` is forwarded for ``cut_after`` bytes and then
closed: the upload dies midway, as it would when a network or the object store fails.

In front of any TCP server (the TLS sandbox too), ``closes`` connections are closed as soon
as they are accepted, before a byte is read (``closed`` counts them), and later ones are
relayed: a load balancer dropping new connections for a moment.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class UploadCuttingProxy:
    def __init__(
        self, upstream_port: int, *, cut_puts: int = 0, cut_after: int = 4096, closes: int = 0
    ) -> None:
        self.upstream_port = upstream_port
        self.cut_puts = cut_puts
        self.cut_after = cut_after
        self.puts_cut = 0
        self.closes = closes
        self.closed = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.closed < self.closes:
                self.closed += 1
                client.close()
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        except OSError:  # the upstream server has stopped
            client.close()
            return
        first = client.recv(65536)
        budget: int | None = None
        if first.startswith(b"PUT "):
            with self._lock:
                if self.cut_puts > 0:
                    self.cut_puts -= 1
                    self.puts_cut += 1
                    budget = self.cut_after
        threading.Thread(target=self._pump, args=(upstream, client, None), daemon=True).start()
        self._pump(client, upstream, budget, first)

    @staticmethod
    def _pump(
        src: socket.socket, dst: socket.socket, budget: int | None, first: bytes = b""
    ) -> None:
        data = first
        try:
            while True:
                if not data:
                    data = src.recv(65536)
                    if not data:
                        break
                if budget is not None:
                    dst.sendall(data[:budget])
                    budget -= len(data[:budget])
                    if budget <= 0:
                        break  # cut the upload midway
                else:
                    dst.sendall(data)
                data = b""
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()
