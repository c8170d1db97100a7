"""A pg_dump pulled over SSH into a file on this machine, for `provision.py backup` and both
providers' `destroy --backup`: owner-only (0600, it holds the app's data), never over an existing
file, and no file left behind when the dump failed. Each failure is one line."""

import os
import subprocess
import time
from pathlib import Path

from stack.errors import UserError
from stack.state import private_dir


def default_backup_path(db_name: str) -> Path:
    """.deploy/backups/<db>-<UTC time>.dump: in the private, git-ignored folder."""
    return private_dir("backups") / f"{db_name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.dump"


def check_backup_path(path: str, label: str = "--backup") -> Path:
    """Refuse before anything happens: a missing folder or an existing file (never overwritten)."""
    target = Path(path).expanduser()
    if not target.parent.is_dir():
        raise UserError(f"{label} {path}: folder {target.parent} does not exist")
    if target.exists():
        raise UserError(f"{label} {path}: the file exists; choose a new name (backups are never overwritten)")
    return target


def pull_dump(
    command: list[str],
    target: Path,
    host_name: str,
    db_name: str,
    progress,
    if_failed: str = "",
    label: str = "--backup",
    explain=lambda stderr: None,
) -> None:
    """Run `command` (ssh ... pg_dump) with its output going into `target`, created 0600 and exclusively.
    `if_failed`: what the caller did not do, added to a failure's line ("nothing was terminated").
    `explain(stderr)`: the whole line for a failure it recognises (a refused host key), else None."""
    tail = f"; {if_failed}" if if_failed else ""
    progress(f"  pulling pg_dump of {db_name} from {host_name} to {target}")
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UserError(
            f"{label} {target}: the file exists; choose a new name (backups are never overwritten)"
        ) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            result = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.PIPE)
    except OSError as problem:  # no ssh client on this machine
        target.unlink(missing_ok=True)
        raise UserError(
            f"backup of {host_name} failed: cannot run ssh ({problem.strerror}); install openssh-client{tail}"
        ) from None
    if result.returncode != 0 or target.stat().st_size == 0:
        target.unlink(missing_ok=True)
        stderr = result.stderr.decode(errors="replace")
        explained = explain(stderr)
        if explained:
            raise UserError(f"backup of {host_name} failed: {explained}{tail}")
        reason = (stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"backup of {host_name} failed ({reason}){tail}")
    progress(f"  saved {target} ({target.stat().st_size} bytes)")


def restore_hint(target: str) -> str:
    return f"restore into an empty database: pg_restore --no-owner --dbname=<empty database> {target}"
