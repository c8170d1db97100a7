"""`backup [PATH]` and `destroy --backup PATH`: pull a pg_dump of the database over SSH (before its
host is terminated)."""

from stack import known_hosts
from stack.aws import discover, instances
from stack.aws.errors import aws_errors
from stack.aws.keys import private_key_path
from stack.aws.plan import Instance
from stack.aws.run import connect, progress
from stack.dump import check_backup_path, default_backup_path, pull_dump, restore_hint
from stack.errors import UserError
from stack.host_keys import mismatch, offered_in
from stack.operate.managed_dump import backup_through_backend
from stack.provider import check_recorded_project
from stack.settings import Settings
from stack.state import known_hosts_file, load_state, private_dir


def backup(settings: Settings, path: str | None) -> int:
    """`provision.py backup [PATH]`: a fresh pg_dump of the database host, read-only on AWS."""
    with aws_errors():
        state = load_state()
        check_recorded_project(state, settings)
        if settings.db_service == "rds" and state is not None:
            # No db host: pg_dump through the setup backend, as the app role over TLS.
            target = path or str(default_backup_path(settings.db_name))
            backup_through_backend(state, settings, target, progress)
            progress(restore_hint(target))
            return 0
        aws = connect(settings)
        found, _ = instances.find_instances(aws.ec2, settings.project_prefix)
        database = found.get(f"{settings.project_prefix}-db")
        if database is None or database.state in ("terminated", "shutting-down"):
            raise UserError(
                f"no database host {settings.project_prefix}-db in this account and region: "
                "run python provision.py first"
            )
        target = path or str(default_backup_path(settings.db_name))
        pull_backup(settings, database, target, progress, if_failed="", label="backup")
        progress(restore_hint(target))
    return 0


def ssh_command(settings: Settings, database: Instance) -> list[str]:
    """ssh to the database host, checking its key against the one pinned under its instance id
    (from its console, by provision.py): a host with no pin is refused here, a changed key by ssh."""
    if not known_hosts.pinned(database.id):
        raise UserError(
            f"{database.name} ({database.id}) has no host key pinned in {known_hosts_file()}; nothing is trusted "
            "on first use: run python provision.py (it pins each host's keys from its console)"
        )
    key = private_key_path(settings)
    private_dir("ssh")
    command = [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts_file()}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        f"HostKeyAlias={database.id}",
        "-o",
        "ConnectTimeout=15",
        *(["-p", str(discover.SSH_PORT)] if discover.SSH_PORT != 22 else []),
    ]
    if key:
        command += ["-i", str(key), "-o", "IdentitiesOnly=yes"]
    # Custom format: compressed, and pg_restore can pick single tables out of it.
    return command + [
        f"{settings.ssh_user}@{database.public_ip}",
        f"sudo -u postgres pg_dump --format=custom {settings.db_name}",
    ]


def _refused_key(database: Instance):
    def explain(stderr: str) -> str | None:
        offered = offered_in(stderr)
        where = f"{database.name} ({database.id}, {database.public_ip})"
        return mismatch(where, offered, known_hosts.pinned(database.id), str(known_hosts_file())) if offered else None

    return explain


def pull_backup(
    settings: Settings,
    database: Instance,
    path: str,
    progress,
    if_failed: str = "nothing was terminated",
    label: str = "--backup",
) -> None:
    target = check_backup_path(path, label)
    if not database.public_ip:
        raise UserError(
            f"{database.name} has no public address (stopped?): start it with python provision.py"
            + (", or destroy without --backup" if if_failed else "")
        )
    pull_dump(
        ssh_command(settings, database),
        target,
        database.name,
        settings.db_name,
        progress,
        if_failed,
        label,
        explain=_refused_key(database),
    )
