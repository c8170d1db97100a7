"""destroy --backup PATH: pull a pg_dump of the database over SSH before its host is terminated."""

import os
import subprocess
from pathlib import Path

from stack.aws.keys import private_key_path
from stack.aws.plan import Instance
from stack.errors import UserError
from stack.settings import Settings
from stack.state import private_dir


def check_backup_path(path: str) -> Path:
    """Refuse before anything happens: a missing folder or an existing file (never overwritten)."""
    target = Path(path).expanduser()
    if not target.parent.is_dir():
        raise UserError(f"--backup {path}: folder {target.parent} does not exist")
    if target.exists():
        raise UserError(f"--backup {path}: the file exists; choose a new name (backups are never overwritten)")
    return target


def ssh_command(settings: Settings, address: str) -> list[str]:
    key = private_key_path(settings)
    command = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new",
               "-o", f"UserKnownHostsFile={private_dir('ssh') / 'known_hosts'}", "-o", "ConnectTimeout=15"]
    if key:
        command += ["-i", str(key)]
    # Custom format: compressed, and pg_restore can pick single tables out of it.
    return command + [f"{settings.ssh_user}@{address}",
                      f"sudo -u postgres pg_dump --format=custom {settings.db_name}"]


def pull_backup(settings: Settings, database: Instance, path: str, progress) -> None:
    target = check_backup_path(path)
    if not database.public_ip:
        raise UserError(f"{database.name} has no public address (stopped?): start it with python provision.py, "
                        "or destroy without --backup")
    progress(f"  pulling pg_dump of {settings.db_name} from {database.name} to {target}")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            result = subprocess.run(ssh_command(settings, database.public_ip), stdout=handle, stderr=subprocess.PIPE)
    except OSError as problem:  # no ssh client on this machine
        target.unlink(missing_ok=True)
        raise UserError(f"backup of {database.name} failed: cannot run ssh ({problem.strerror}); install "
                        "openssh-client; nothing was terminated") from None
    if result.returncode != 0 or target.stat().st_size == 0:
        target.unlink(missing_ok=True)
        reason = (result.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise UserError(f"backup of {database.name} failed ({reason}); nothing was terminated")
    progress(f"  saved {target} ({target.stat().st_size} bytes)")
