"""`python -m uvicorn` with TCP_NODELAY on the listening socket it binds for --workers N.

uvicorn 0.54 binds the listener of `--workers N` (N > 1) itself with `proto` 0; asyncio enables
TCP_NODELAY on accepted sockets only when `proto == IPPROTO_TCP`, so Nagle's algorithm stays on
and every keep-alive response after the first waits for the client's delayed ACK (~40 ms on
Linux): Kludex/uvicorn#3149, kserve/kserve#6050. Linux copies TCP_NODELAY from the listener to
the connections it accepts, so setting it once here restores single-worker behaviour.
`make bench-compare` measures uvicorn both ways; nothing else changes.
"""

import socket
import sys

import uvicorn.config
from uvicorn.main import main as uvicorn_main

_bind_socket = uvicorn.config.Config.bind_socket


def _bind_socket_nodelay(self):
    sock = _bind_socket(self)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


uvicorn.config.Config.bind_socket = _bind_socket_nodelay

if __name__ == "__main__":
    sys.exit(uvicorn_main())
