"""How the deploy talks to PostgreSQL on the database host, and how it writes the cluster's files.

The cluster's config folder (/etc/postgresql/<v>/main) belongs to postgres, who may replace any
file in it by a link (to a systemd unit, to a root-only file): root never writes, chowns or reads
there. Its files are read and written as postgres (AS_POSTGRES), who may own them anyway
(PostgreSQL reads them as postgres), so a planted link reaches nothing postgres could not already
change; and a file is written beside its target and renamed over it, which replaces a link
instead of writing through it.
"""

import posixpath
import shlex
from typing import Any

# Run as postgres through sudo: peer authentication on the local socket, no password anywhere.
AS_POSTGRES: dict[str, Any] = {"_sudo": True, "_sudo_user": "postgres"}

# The files of the main cluster's config folder that the deploy owns.
CLUSTER_FILES = ("conf.d/90-deploy.conf", "pg_hba.conf", "pg_ident.conf")

# After a reload, restart only when a changed setting cannot take effect without one. The reload
# is a signal: the settings are read once pg_conf_load_time() moves (at most 10 s), not after a
# fixed sleep. A server that does not answer is restarted.
# (Connects to the `postgres` database, where the app role owns nothing: see psql below.)
RELOAD_OR_RESTART = (
    'q() { (cd / && runuser -u postgres -- psql -XtAc "$1") 2>/dev/null; }; '
    "before=$(q 'SELECT pg_conf_load_time()'); "
    "systemctl reload postgresql && n=0 && "
    'while [ -n "$before" ] && [ "$(q \'SELECT pg_conf_load_time()\')" = "$before" ] && [ $n -lt 100 ]; '
    "do sleep 0.1; n=$((n + 1)); done && "
    "if [ \"$(q 'SELECT count(*) FROM pg_settings WHERE pending_restart')\" != 0 ]; "
    "then systemctl restart postgresql; fi"
)


def psql(sql: str) -> str:
    """A psql command line (no .psqlrc, stop on error, bare output), for AS_POSTGRES.
    `cd /`: postgres may not read the SSH user's home.

    It connects to the `postgres` database (psql's default for the postgres user): the app role
    cannot log in there (pg_hba.conf lets it reach only the app database, from the backends) and
    so owns nothing there to run in this superuser session; pg_catalog is searched before any
    schema, so the catalog names these queries use are PostgreSQL's own."""
    return f"cd / && psql -X -v ON_ERROR_STOP=1 -tA -c {shlex.quote(sql)}"


def cluster_state(files: tuple[str, ...] = CLUSTER_FILES) -> str:
    """For AS_POSTGRES: pg_lsclusters' lines; then, for the main cluster, '--' and a stat line
    ('%U %G %a %F|%n', a link not followed) of each of `files` that exists; then '--' and the
    sha256sum line of each that is a regular file (never read through a link)."""
    names = " ".join(shlex.quote(name) for name in files)
    return (
        "cd / && clusters=$(pg_lsclusters --no-header) || exit 1; "
        "printf '%s\\n' \"$clusters\"; "
        "version=$(printf '%s\\n' \"$clusters\" | awk '$2 == \"main\" {print $1; exit}'); "
        'if [ -n "$version" ]; then '
        'folder="/etc/postgresql/$version/main"; echo --; '
        f"for name in {names}; do stat -c '%U %G %a %F|%n' -- \"$folder/$name\" 2>/dev/null; done; echo --; "
        f'for name in {names}; do path="$folder/$name"; '
        'if [ -f "$path" ] && [ ! -L "$path" ]; then sha256sum -- "$path"; fi; done; '
        "fi; true"
    )


def write_as_postgres(path: str, content: str, mode: str) -> str:
    """For AS_POSTGRES: `path` holds `content` with `mode`, as a regular file of postgres. Written
    under a fresh name beside it and renamed over it (a link there is replaced, never followed);
    a folder that is a link or that postgres cannot write is refused in one line."""
    folder, name = posixpath.split(path)
    refusal = (
        f"{folder} is not a folder that postgres can write (a link, or another owner): refused to write "
        f"{name} there; restore the cluster folder (a real folder owned by postgres) and deploy again"
    )
    temp = shlex.quote(f"{folder}/.{name}.") + "XXXXXX"
    return (
        f"cd / && umask 077 && "
        f"if [ -L {shlex.quote(folder)} ] || ! temp=$(mktemp {temp} 2>/dev/null); "
        f"then echo {shlex.quote(refusal)} >&2; exit 1; fi; "
        f'printf %s {shlex.quote(content)} > "$temp" && chmod {mode} "$temp" && '
        f'mv -fT -- "$temp" {shlex.quote(path)} || {{ rm -f -- "$temp"; exit 1; }}'
    )
