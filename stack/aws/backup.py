"""`backup [PATH]` and `destroy --backup PATH`: pull a pg_dump of the database over SSH (before its
host is terminated)."""

from stack.aws.keys import private_key_path
from stack.aws.plan import Instance
from stack.dump import check_backup_path, pull_dump
from stack.errors import UserError
from stack.settings import Settings
from stack.state import private_dir


def ssh_command(settings: Settings, address: str) -> list[str]:
    key = private_key_path(settings)
    command = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new",
               "-o", f"UserKnownHostsFile={private_dir('ssh') / 'known_hosts'}", "-o", "ConnectTimeout=15"]
    if key:
        command += ["-i", str(key)]
    # Custom format: compressed, and pg_restore can pick single tables out of it.
    return command + [f"{settings.ssh_user}@{address}",
                      f"sudo -u postgres pg_dump --format=custom {settings.db_name}"]


def pull_backup(settings: Settings, database: Instance, path: str, progress,
                if_failed: str = "nothing was terminated", label: str = "--backup") -> None:
    target = check_backup_path(path, label)
    if not database.public_ip:
        raise UserError(f"{database.name} has no public address (stopped?): start it with python provision.py"
                        + (", or destroy without --backup" if if_failed else ""))
    progress(f"  pulling pg_dump of {settings.db_name} from {database.name} to {target}")
    pull_dump(ssh_command(settings, database.public_ip), target, database.name, progress, if_failed, label)
