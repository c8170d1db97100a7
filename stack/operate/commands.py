"""The exact command lines of ssh, logs, manage and psql (pure: no I/O, tested by exact argv).

Every command is `ssh` with the project's key, the project's known_hosts as the only one
(StrictHostKeyChecking=yes: a host that is not pinned, or whose key changed, is refused rather
than trusted), then a remote command. Remote commands that need root get `sudo -n` when the
state's user is not root (AWS's ubuntu); secrets stay in the root-only files on the hosts.
"""

import re
import shlex

from stack.operate.hosts import Target
from stack.settings import Settings
from tasks.backend.layout import LAYOUT
from tasks.kong.render import CONTAINER as KONG_CONTAINER

DEFAULT_LINES = 100
POSTGRES_LOGS = "/var/log/postgresql/postgresql-*-main.log"
AS_POSTGRES_EXEC = "setpriv --reuid=postgres --regid=postgres --init-groups"
SINCE = re.compile(r"^(\d+)([smhd])$")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def ssh_argv(
    host: Target,
    remote: list[str] | None = None,
    tty: bool = False,
    force_tty: bool = False,
    log_file: str | None = None,
) -> list[str]:
    """ssh to `host`; `remote` words are joined by ssh with spaces and run by the remote shell.
    `tty`: a terminal for an interactive program. `force_tty` (-tt) even without a local terminal,
    so that the remote reader gets SIGHUP when the connection ends (logs -f). `log_file`: ssh's own
    messages go there (-E), apart from the remote command's stderr, to be told in one line."""
    argv = [
        "ssh",
        "-i",
        host.key,
        "-p",
        str(host.port),
        *(["-E", log_file] if log_file else []),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={host.known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        *(["-o", f"HostKeyAlias={host.host_key_alias}"] if host.host_key_alias else []),
        "-o",
        "ConnectTimeout=10",
        "-o",
        "ServerAliveInterval=15",
        "-o",
        "LogLevel=ERROR",
    ]
    argv += ["-tt"] if force_tty else ["-t"] if tty else ["-T"]
    argv.append(f"{host.user}@{host.address}")
    return argv + list(remote or [])


def sudo_prefix(user: str) -> str:
    """What a remote command that needs root starts with when `user` logs in: `sudo -n` (never a
    password prompt that would hang), nothing for root (an AWS image may log in as root)."""
    return "" if user == "root" else "sudo -n "


def as_root(host: Target, command: str) -> str:
    return sudo_prefix(host.user) + command


def manage_command(host: Target, args: list[str]) -> str:
    """Django's manage.py through the run helper: as the app user, in the live release, with the
    root-only env file loaded by the helper (never on a command line)."""
    django = shlex.join(["python", "manage.py", *args])
    return as_root(host, f"{LAYOUT.run_helper} --quiet {shlex.quote(django)}")


def psql_command(host: Target, settings: Settings, args: list[str]) -> str:
    """psql on the db host through the local socket (no port opened), logged in as the app role
    itself: the postgres system user is mapped to it by peer authentication (pg_ident.conf, see
    tasks/db/render.py), so no password is needed and the session has the app's rights and no
    more. Never a superuser session that takes the app's role (`-c role=...`): any function of
    the app's that it ran could `RESET ROLE` and act as the superuser."""
    return as_root(
        host,
        f"runuser -u postgres -- env --chdir=/ psql -U {settings.db_user} -d {settings.db_name}"
        + "".join(f" {shlex.quote(arg)}" for arg in args),
    )


def managed_client_command(host: Target, tool: str, settings: Settings, database: dict, args: list[str]) -> str:
    """psql or pg_dump on the setup backend against the managed database (db_service rds): as the
    app user (the app role's session, never the master's), over TLS verified against the CA bundle,
    the app role's password read by root from the backend's root-only env file into PGPASSWORD
    (inherited, never in a command line)."""
    conninfo = (
        f"host={database['address']} port={database['port']} dbname={settings.db_name} user={settings.db_user} "
        f"sslmode=verify-full sslrootcert={LAYOUT.config_root}/database-ca.pem"
    )
    words = "".join(f" {shlex.quote(arg)}" for arg in args)
    script = (
        f"cd / && PGPASSWORD=$(sed -n 's/^DATABASE_PASSWORD=//p' {LAYOUT.env_file}) && export PGPASSWORD "
        f"PSQL_HISTORY=/dev/null && exec runuser -u {LAYOUT.user} -- {tool} {'-X ' if tool == 'psql' else ''}"
        f"{shlex.quote(conninfo)}{words}"
    )
    return as_root(host, f"sh -c {shlex.quote(script)}")


def since_seconds(since: str | None) -> int | None:
    """`10m` -> 600; None stays None. Raises ValueError for anything else."""
    if since is None:
        return None
    match = SINCE.match(since)
    if not match:
        raise ValueError(since)
    return int(match.group(1)) * SECONDS[match.group(2)]


def logs_command(host: Target, lines: int | None, since: int | None, follow: bool) -> str:
    """The remote command printing this host's logs. Without `since`: the last `lines` (100).
    With `since`: the lines of the last `since` seconds, at most the last `lines` of them, or
    all of them when following (then new lines as they come)."""
    count = lines if lines is not None else (None if since is not None else DEFAULT_LINES)
    cap = since is not None and count is not None and not follow  # cap after the time filter
    if since is not None and follow:
        count = None
    if host.role == "backend":
        # The app's journal holds every line gunicorn appends to django.log (its config writes
        # each line to both), plus systemd's start/stop/crash lines and output before logging starts.
        # journalctl applies --lines before --since (the first N), hence the tail for a cap.
        source = (
            f"env SYSTEMD_COLORS=0 journalctl --unit={LAYOUT.service}.service --no-pager --output=short-iso"
            + (f" --lines={count}" if count is not None and since is None else "")
            + (f" --since=-{since}s" if since is not None else "")
            + (" --follow" if follow else "")
        )
    elif host.role == "kong":
        source = (
            f"docker logs --tail={count if count is not None else 'all'}"
            + (f" --since={since}s" if since is not None else "")
            + (" --follow" if follow else "")
            + f" {KONG_CONTAINER} 2>&1"
        )
        cap = False  # docker applies --tail to the lines since --since itself
    else:
        # PostgreSQL's log files are postgres's (a link there could point at a root-only file):
        # read as postgres (setpriv execs tail, so -f still ends with the session's SIGHUP).
        source = (
            f"{AS_POSTGRES_EXEC} tail -q -n {'+1' if since is not None else count}"
            + (" -F" if follow else "")
            + f" {POSTGRES_LOGS}"
        )
        if since is not None:
            # PostgreSQL lines start with the server's local time (log_timezone = the system's); a line
            # without a time (a statement's continuation) follows the fate of the line before it.
            source = (
                f"cutoff=$(date -d @$(( $(date +%s) - {since} )) '+%Y-%m-%d %H:%M:%S'); {source} | awk -v "
                'c="$cutoff" \'/^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] / {keep = substr($0, 1, 19) >= c} '
                "keep {print; fflush()}'"
            )
    if cap:
        source += f" | tail -n {count}"
    if "|" in source or ";" in source:
        return as_root(host, f"sh -c {shlex.quote(source)}")
    return as_root(host, source)
