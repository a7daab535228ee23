"""The one check `auxcut serve` and `auxcut ui` make before starting a server: is its port free?"""

from __future__ import annotations

import socket

from auxcut import AuxcutError


def check_port_free(host: str, port: int) -> None:
    """An AuxcutError when another program listens on host:port. Checked before the server starts, so a busy port is
    one line instead of the server's traceback, or (the UI) a URL printed for the other program's page."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            # As the servers bind: a port left in TIME_WAIT by a server that just stopped is free for them.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise AuxcutError(f"port {port} on {host} is not free ({exc.strerror}): stop the program using it, "
                          "or pick another with --port") from None
