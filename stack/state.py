"""The one place that knows where local files live and the shape of the state file.

Everything the project keeps on the operator's machine sits in one git-ignored folder,
`.deploy/` at the project root (DEPLOY_HOME overrides it, e.g. for tests):
  state.json    what provision.py created; inventory.py reads it
  secrets.yml   generated passwords and keys (mode 0600)
  ssh/          the project's SSH key pair and known_hosts
State shape (version 1), as the records State and Host below:
  {"version": 1, "provider": "local" | "aws", "prefix": "des", "region": "us-east-1",
   "hosts": {"des-db": {"role": "db", "key": null, "private_ip": "...", "public_ip": "...",
                        "ssh_user": "...", "ssh_key": "/abs/path", "ssh_port": 22, ...provider extras}},
   "aws": {...}, "local": {...},   # provider-owned sections
   "database": {...}}              # db_service rds only, see DATABASE below
"""

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from stack.errors import UserError
from stack.settings import PROJECT_ROOT

STATE_VERSION = 1
ROLES = ("db", "backend", "kong", "rds")  # rds: the local stand-in for RDS (stack/local/rds.py)
# The database the deploy connects to when it is not a db host of the project (db_service rds):
#   {"service": "rds", "identifier": "des-db", "address": "des-db.x.us-east-1.rds.amazonaws.com",
#    "port": 5432, "master_user": "sprint2admin",
#    "ca_bundle_url": "https://truststore.pki.rds.amazonaws.com/<region>/<region>-bundle.pem"}
# (AWS: the backends download the regional bundle at deploy time) or, instead of the URL,
# "ca_bundle_pem": "-----BEGIN CERTIFICATE-----..." (the local provider's RDS-like host).
# With db_service host there is NO "database" entry (the db host in "hosts" is the database).
# It is recorded once the endpoint is known: an RDS instance still being created (apply --no-wait)
# has none yet, and the next apply records it.
DATABASE_KEYS = ("service", "identifier", "address", "port", "master_user")


def deploy_home() -> Path:
    return Path(os.environ.get("DEPLOY_HOME") or PROJECT_ROOT / ".deploy").resolve()


def known_hosts_file() -> Path:
    """The project's own known_hosts: every SSH connection to the hosts checks their keys against it."""
    return deploy_home() / "ssh" / "known_hosts"


def state_path() -> Path:
    return deploy_home() / "state.json"


def private_dir(*parts: str) -> Path:
    """A folder under deploy_home() readable by the owner only, created on demand."""
    path = deploy_home().joinpath(*parts)
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"{path}: exists and is not a folder; point DEPLOY_HOME at a folder") from None
    os.chmod(deploy_home(), 0o700)
    os.chmod(path, 0o700)
    return path


class _ReadByKey:
    """Read access by the JSON's key names, for the readers that still index the state like the
    JSON it is stored as (stack/operate, stack/deploy_lock): `state.get("hosts")`, `host["role"]`."""

    extra: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        if key != "extra" and key in {item.name for item in fields(self)}:  # type: ignore[arg-type]
            return getattr(self, key)
        return self.extra[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


@dataclass
class Host(_ReadByKey):
    """One recorded host: how to reach it and what it is. `extra` holds what its provider adds
    (AWS: instance_id, instance_type, zone, state; local: "local": {pid, dir, root, ...})."""

    role: str  # one of ROLES
    private_ip: str
    public_ip: str | None  # None while an EC2 instance is stopped
    ssh_user: str
    key: str | None = None  # a backend's key ("a" for des-backend-a)
    ssh_key: str | None = None  # the private key's path; None: the operator's own ssh setup
    ssh_port: int = 22
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "key": self.key,
            "private_ip": self.private_ip,
            "public_ip": self.public_ip,
            "ssh_user": self.ssh_user,
            "ssh_key": self.ssh_key,
            "ssh_port": self.ssh_port,
            **self.extra,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "Host":
        common = {item.name for item in fields(cls)} - {"extra"}
        return cls(
            **{key: raw[key] for key in common if key in raw},
            extra={key: value for key, value in raw.items() if key not in common},
        )


@dataclass
class State(_ReadByKey):
    """What provision.py created. `aws` and `local` are the provider-owned sections."""

    provider: str  # "aws" | "local"
    prefix: str
    region: str | None = None
    hosts: dict[str, Host] = field(default_factory=dict)
    aws: dict[str, Any] | None = None
    local: dict[str, Any] | None = None
    database: dict[str, Any] | None = None  # see DATABASE_KEYS: db_service rds only
    version: int = STATE_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = {
            "version": self.version,
            "provider": self.provider,
            "prefix": self.prefix,
            "region": self.region,
            "hosts": {name: host.to_json() for name, host in self.hosts.items()},
            **self.extra,
        }
        for section in ("aws", "local", "database"):
            if getattr(self, section) is not None:
                data[section] = getattr(self, section)
        return data

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "State":
        known = {"version", "provider", "prefix", "region", "hosts", "aws", "local", "database"}
        # Only hand-written files lack provider or prefix (provision.py always writes both).
        return cls(
            provider=raw.get("provider") or "",
            prefix=raw.get("prefix") or "",
            region=raw.get("region"),
            hosts={name: Host.from_json(host) for name, host in raw["hosts"].items()},
            aws=raw.get("aws"),
            local=raw.get("local"),
            database=raw.get("database"),
            version=raw["version"],
            extra={key: value for key, value in raw.items() if key not in known},
        )


def load_state() -> State | None:
    """The recorded state, or None when nothing was provisioned yet."""
    path = state_path()
    try:
        if not path.exists():
            return None
        state = json.loads(path.read_text())
    except PermissionError:
        # e.g. `plan` run as an ordinary user against the state root made (DEPLOY_HOME is 0700)
        raise UserError(
            f"{path}: not readable by this user: run as its owner (sudo), or set DEPLOY_HOME to a copy you can read"
        ) from None
    except (OSError, ValueError) as problem:
        raise UserError(f"{path}: unreadable state file ({problem}); restore it or re-run provision.py") from None
    if not isinstance(state, dict):
        raise UserError(f"{path}: not a state file (expected a JSON object); restore it or re-run provision.py")
    if state.get("version") != STATE_VERSION:
        raise UserError(f"{path}: state version {state.get('version')!r}, expected {STATE_VERSION}")
    # Every reader indexes these keys: a hand-edited host is one line here, not a KeyError there.
    hosts = state.get("hosts")
    if not isinstance(hosts, dict):
        raise UserError(f'{path}: "hosts" is not a mapping of host names; restore it or re-run provision.py')
    for name, host in hosts.items():
        if (
            not isinstance(host, dict)
            or host.get("role") not in ROLES
            or not all(key in host for key in ("private_ip", "public_ip", "ssh_user"))
        ):
            raise UserError(
                f"{path}: host {name!r} lacks role ({'/'.join(ROLES)}), private_ip, public_ip "
                f"or ssh_user; restore it or re-run provision.py"
            )
    database = state.get("database")
    if database is not None and (
        not isinstance(database, dict)
        or database.get("service") != "rds"
        or not all(key in database for key in DATABASE_KEYS)
        or not ("ca_bundle_url" in database or "ca_bundle_pem" in database)
    ):
        raise UserError(
            f'{path}: "database" lacks service (rds), {", ".join(DATABASE_KEYS[1:])} or a CA bundle; '
            f"restore it or re-run provision.py"
        )
    return State.from_json(state)


def save_state(state: State) -> None:
    """Write atomically (a crash never leaves half a file), readable by the owner only."""
    private_dir()
    path = state_path()
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(state.to_json(), handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(temporary, path)


def remove_state() -> None:
    state_path().unlink(missing_ok=True)
