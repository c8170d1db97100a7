"""pyinfra's SSH connections check each host's key against its pin before anything is sent.

The inventory (stack/inventory.py) hands paramiko a `transport_factory` (the documented hook that
stack/ssh_nodelay.py uses too): right after the key exchange, before authentication, the key the
host offered is compared with the keys pinned for it in the project's known_hosts under the
host's own name (the instance id on AWS, so a new public IP changes nothing). A host with no pin,
or another key, is refused with one line naming the host and both fingerprints; nothing is
trusted on first use. paramiko's own check by address (StrictHostKeyChecking=yes) stays behind it.
pyinfra shows a ConnectError as that host's one red line (not as a traceback).
"""

from dataclasses import dataclass
from pathlib import Path

import paramiko
from pyinfra.api.exceptions import ConnectError

from stack.host_keys import HostKey, keys_for, mismatch
from stack.ssh_nodelay import set_nodelay


def refusal(host: str, pin_name: str, known_hosts: str, offered: HostKey) -> str | None:
    """Why `offered` is refused for `host` (None: it is pinned). Pure but for reading known_hosts."""
    path = Path(known_hosts)
    pinned = keys_for(path.read_text() if path.exists() else "", pin_name)
    if not pinned:
        return (
            f"{host} has no host key pinned in {known_hosts} (under {pin_name}); nothing is trusted on first "
            "use and nothing was sent: run python provision.py, which pins each host's keys from its console"
        )
    if offered not in pinned:
        return mismatch(host, offered.described, pinned, known_hosts)
    return None


class _PinnedTransport(paramiko.Transport):
    check: "PinnedTransportFactory"

    def start_client(self, event=None, timeout=None):
        super().start_client(event=event, timeout=timeout)
        offered = self.get_remote_server_key()
        problem = self.check.refused(HostKey(offered.get_name(), offered.get_base64()))
        if problem:
            self.close()
            raise ConnectError(problem)


@dataclass(frozen=True)
class PinnedTransportFactory:
    """paramiko's `transport_factory` for one host; TCP_NODELAY too unless `nodelay` is off."""

    host: str  # how the refusal names it: "des-db (i-0abc, 198.51.100.4)"
    pin_name: str  # its name in known_hosts: the instance id, or [address]:port
    known_hosts: str
    nodelay: bool = True

    def refused(self, offered: HostKey) -> str | None:
        return refusal(self.host, self.pin_name, self.known_hosts, offered)

    def __call__(self, sock, **kwargs) -> paramiko.Transport:
        if self.nodelay:
            set_nodelay(sock)
        transport = _PinnedTransport(sock, **kwargs)
        transport.check = self
        return transport
