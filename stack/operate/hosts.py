"""Which recorded host a command means, and how to reach it with the project's key and pinned keys.

Every operate command reaches hosts the way the deploy does (the state's user, address and key)
but never trusts a host key on first use: the host must already be in .deploy/ssh/known_hosts
(provision.py pins each host's keys from its console when it creates it; an AWS host under its
instance id, which ssh is told with HostKeyAlias, so a new public IP changes nothing).
Nothing here touches the network.
"""

from dataclasses import dataclass
from pathlib import Path

import paramiko

from stack.errors import UserError
from stack.host_keys import address_name
from stack.state import ROLES, Host, State, known_hosts_file

# Group names of inventory.py are accepted too: `logs backends`.
ROLE_ALIASES = {"backends": "backend", "database": "db"}


@dataclass(frozen=True)
class Target:
    """One host as ssh needs it."""

    name: str
    role: str
    address: str
    user: str
    key: str
    known_hosts: str
    port: int = 22
    private_ip: str = ""
    backend_key: str | None = None
    host_key_alias: str | None = None  # the EC2 instance id its keys are pinned under

    @property
    def known_hosts_name(self) -> str:
        # OpenSSH records a non-default port as [address]:port.
        return self.host_key_alias or address_name(self.address, self.port)


def recorded_hosts(state: State | None) -> dict[str, Host]:
    if not state or not state.hosts:
        raise UserError("no hosts recorded yet: run python provision.py first")
    return state.hosts


def select(hosts: dict[str, Host], wanted: list[str], prefix: str | None = None) -> list[str]:
    """Host names for each NAME or ROLE in `wanted` (all hosts when empty), sorted, without repeats.
    A name may leave out the project prefix: `backend-a` is `des-backend-a`."""
    if not wanted:
        return sorted(hosts)
    chosen: set[str] = set()
    for word in wanted:
        role = ROLE_ALIASES.get(word, word)
        if word in hosts:
            chosen.add(word)
        elif f"{prefix}-{word}" in hosts:
            chosen.add(f"{prefix}-{word}")
        elif role in ROLES and any(host.role == role for host in hosts.values()):
            chosen.update(name for name, host in hosts.items() if host.role == role)
        else:
            raise UserError(
                f"no host or role {word!r} in the state (hosts: {', '.join(sorted(hosts))}; roles: {', '.join(ROLES)})"
            )
    return sorted(chosen)


def select_one(hosts: dict[str, Host], word: str, prefix: str | None = None) -> str:
    names = select(hosts, [word], prefix)
    if len(names) > 1:
        raise UserError(f"{word} names {len(names)} hosts ({', '.join(names)}): name one of them")
    return names[0]


def setup_backend_name(hosts: dict[str, Host]) -> str:
    """The backend that sets the database up: the first by name (tasks/backend/deploy.py setup_backend),
    so manage.py runs where the migrations run."""
    backends = sorted(name for name, host in hosts.items() if host.role == "backend")
    if not backends:
        raise UserError("the state records no backend: run python provision.py to create them")
    return backends[0]


def target(name: str, host: Host, provider: str | None) -> Target:
    """The host as a Target; one line when its address, key or pinned host key is missing."""
    address = host.public_ip or (host.private_ip if provider == "local" else None)
    if not address:
        raise UserError(f"{name} has no public address (stopped?): start it with python provision.py")
    key = host.ssh_key
    if not key:
        raise UserError(
            f"no SSH key is recorded for {name}: set ssh_key_path in config.yml and run python provision.py"
        )
    key = str(Path(key).expanduser())
    if not Path(key).is_file():
        raise UserError(f"the SSH key {key} for {name} is missing: restore it (or set ssh_key_path)")
    known_hosts = known_hosts_file()
    found = Target(
        name,
        host.role,
        address,
        host.ssh_user,
        key,
        str(known_hosts),
        host.ssh_port,
        host.private_ip,
        host.key,
        host.extra.get("instance_id"),
    )
    if not _is_pinned(known_hosts, found.known_hosts_name):
        how = (
            (
                "re-create it: python provision.py --provider local destroy --only "
                + name
                + " && python provision.py --provider local"
            )
            if provider == "local"
            else "run python provision.py (it pins each host's keys from its console)"
        )
        raise UserError(
            f"{known_hosts} has no host key for {name} ({found.known_hosts_name}); "
            f"nothing is trusted on first use here: {how}"
        )
    return found


def _is_pinned(known_hosts: Path, host_name: str) -> bool:
    try:
        keys = paramiko.HostKeys(str(known_hosts))
    except OSError:
        return False
    return keys.lookup(host_name) is not None
