"""TCP_NODELAY on every SSH connection pyinfra opens for this project (the one place it is set).

Why: pyinfra runs each command as its own SSH channel: the client writes several small packets in
a row (channel open, exec request, EOF of stdin, window adjusts) and waits for the answer. With
Nagle's algorithm on (neither paramiko nor pyinfra turns it off) a small packet waits until the
previous one is acknowledged, and the host delays that ACK (up to 40 ms on Linux) hoping to
piggyback it. Measured here (issue 12): 60 of 89 trivial commands took >= 35 ms (median 51 ms)
instead of ~14 ms.

How, with documented hooks only: pyinfra passes the host data `ssh_paramiko_connect_kwargs` to
paramiko's `SSHClient.connect`, whose `transport_factory` (paramiko >= 3.2) is handed the freshly
connected socket before the SSH handshake. The inventory (stack/inventory.py host_data) puts
`connect_kwargs()` into every host's data, so every pyinfra run of the project (deploy.py,
rollback.py, ad-hoc `exec`/`fact`, reconnects) gets it. A socket that is not TCP (a ProxyCommand
pipe, a ProxyJump channel) is handed on untouched.

The operate commands (`python provision.py ssh/logs/status`) run OpenSSH's client, which sets
TCP_NODELAY itself on every session, interactive or not (packet.c: ssh_packet_set_interactive).

`DEPLOY_SSH_NODELAY=0` leaves Nagle on: only for measuring the difference (bench/converge.py).
"""

import logging
import os
import socket

import paramiko

logger = logging.getLogger(__name__)

SWITCH = "DEPLOY_SSH_NODELAY"


def set_nodelay(sock) -> bool:
    """Nagle off on a TCP socket; True when set, False for anything else (left untouched)."""
    if not isinstance(sock, socket.socket) or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    logger.debug("TCP_NODELAY set on the SSH socket to %s", sock.getpeername()[0])
    return True


def nodelay_transport(sock, **kwargs) -> paramiko.Transport:
    """paramiko's `transport_factory`: the default Transport, on a socket with Nagle off."""
    set_nodelay(sock)
    return paramiko.Transport(sock, **kwargs)


def connect_kwargs() -> dict:
    """pyinfra host data that makes its ssh connector use `nodelay_transport` (empty when switched
    off). A new dict per host: pyinfra may merge into it."""
    if os.environ.get(SWITCH, "1") == "0":
        return {}
    return {"ssh_paramiko_connect_kwargs": {"transport_factory": nodelay_transport}}
