"""Releases: how a new commit of the app reaches the backends with the service up all along.

Each commit is built beside the running one, in its own release (`/srv/sprint2/releases/<commit>`:
a work tree of the mirrored repository, a virtualenv shared by releases of identical requirements,
its static files). The setup backend migrates the database from the new release while every
backend still serves the old one (so the app's migrations must keep the old code working: add
columns with defaults, drop them a release later). Then the backends switch in batches: the
`current` link moves, gunicorn restarts behind systemd's socket (no connection refused), and the
next batch starts only when the health path answers; a release that does not answer healthy is
switched back on that backend and the roll stops there.

The migration files `makemigrations` writes (the app commits none) are kept in the database
(files/backend/deploy_marker.py), so whichever backend sets the database up starts from the same
history. They are code (makemigrations and migrate import them), so they are kept where the app's
role cannot write: a table of the deploy-only role (tasks/db/history.py), read and written by root
on the setup backend with that role's login, which is there only while a setup runs.
"""

import json
import shlex
from io import StringIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, operation

from tasks import asked_once
from tasks.backend.commands import (
    history_credentials,
    history_step,
    marker_script,
    populate_marker,
    run_app,
    wrapped,
)
from tasks.backend.facts import DeployMarkers
from tasks.backend.layout import LAYOUT, Layout
from tasks.backend.operations import no_commit, release_commit, stop
from tasks.shared import HISTORY_ROLE

# The marker of the populate commands from before each had its own: all of them ran.
LEGACY_POPULATED = "populated"
# Set with the setup once the history is kept in the deploy-only table (deploy_marker.py's
# HISTORY_MARKER and HISTORY): a database set up before that is set up again once, to adopt it.
HISTORY_MARKER, HISTORY = "history", "sprint2_deploy.migrations"


def history_login(
    db_host: str, db_name: str, password: str, port: int = 5432, tls: dict[str, str] | None = None
) -> str:
    """The deploy-only role's login, as the setup backend's root-only credentials file holds it
    (`tls`: sslmode and sslrootcert, for a managed database)."""
    login = {"host": db_host, "port": port, "dbname": db_name, "user": HISTORY_ROLE, "password": password}
    return json.dumps({**login, **(tls or {})}, sort_keys=True) + "\n"


def root_only_file(path: str, content: str):
    """Commands writing `content` to `path` (root's, 0600 from its creation, never in a command
    line or a --diff), as tasks/backend/operations.py secret_file does, without asking first: it
    is removed when the setup ends, so it is never there to compare with."""
    yield f"install -m 600 -o root -g root /dev/null {path}.new"
    temporary = host.get_temp_filename(path)
    ssh_user = host.data.get("ssh_user")
    if ssh_user and ssh_user != "root":
        # With sudo, pyinfra uploads to a temporary file first (SFTP as the SSH user): private beforehand.
        yield f"install -m 600 -o {ssh_user} /dev/null {temporary}"
    yield FileUploadCommand(StringIO(content), f"{path}.new", remote_temp_filename=temporary)
    yield f"mv -f {path}.new {path}"


def setup_steps(layout: Layout, release: str, commit: str, commands: list[str], allow_destructive: bool) -> list[str]:
    """The setup's commands, in order: the saved history into the release (as root, its files as
    the app user), then before EVERY setup command (whatever it runs: a `sh -c '... migrate'` is
    not recognised by its words) the check that the pending migrations, and those makemigrations
    would write, keep the data (the first check also checks the old history), and the history
    saved (before migrate applies it: a run interrupted after migrate must not find the database
    migrated by files it no longer has); last the history saved once more and the commit recorded."""
    check = "check-migrations" + (" --allow-destructive" if allow_destructive else "")
    save = history_step(layout, "save-migrations", release)
    steps = [history_step(layout, "restore-migrations", release)]
    if not commands:  # no check to carry it: the old history is checked on its own
        steps.append(run_app(layout, marker_script(layout, "adopt-legacy-migrations"), release=release))
    for number, command in enumerate(commands):
        # The old history is checked in the first check's own start of Django (one start less).
        adopt = " --adopt-legacy" if number == 0 else ""
        steps += [run_app(layout, marker_script(layout, check + adopt), release=release), save]
        steps.append(run_app(layout, command, release=release))
    return steps + [save, run_app(layout, f"{marker_script(layout, 'setup-done')} {commit}", release=release)]


def read_markers(release: str) -> tuple[dict | None, str | None]:
    """(markers, None), or (None, error) when the database cannot be read (from `release`).
    One start of Django per run serves the setup, the populate and the switch, until one of them
    writes a marker (asked_once.forget)."""
    answer = asked_once.fact(DeployMarkers, release=release)
    if answer.get("error"):
        return None, answer["error"]
    return answer.get("markers") or {}, None


def built_release_and_markers(repo: str, ref: str, layout: Layout, later: str):
    """(commit, its release, the database's markers read from it), or None once the operation has
    failed, or noted in a preview that it runs `later`, because either is not there yet."""
    commit = release_commit(repo, ref, layout)
    if commit is None:
        yield from no_commit(repo, ref, later)
        return None
    release = layout.release(commit)
    markers, error = read_markers(release)
    if error:
        yield from stop(f"{host.name}: cannot read the deploy marker from the database: {error}", later)
        return None
    return commit, release, markers


@operation()
def app_setup(
    repo: str,
    ref: str,
    commands: list[str],
    layout: Layout = LAYOUT,
    allow_destructive: bool = False,
    history: str = "",
):
    """Set the database up for `ref`'s release, from that release, before any backend serves it
    (setup_steps), with `history` (history_login) in a root-only file for as long as it runs."""
    found = yield from built_release_and_markers(repo, ref, layout, "the setup commands run after the build")
    if found is None:
        return
    commit, release, markers = found
    if markers.get("setup") == commit and markers.get(HISTORY_MARKER) == HISTORY:
        host.noop(f"the database is set up for {commit[:12]}")
        return
    asked_once.forget(DeployMarkers)
    why = (
        f"{host.name}: cannot set the database up for {commit[:12]}: $reason; every backend keeps "
        f"serving its release: commit the migrations in the app, or start from an empty database "
        f"(docs/deploying.md: Moving to another commit of the app)"
    )
    credentials = history_credentials(layout)
    yield from root_only_file(credentials, history)
    steps = setup_steps(layout, release, commit, commands, allow_destructive)
    yield f"trap 'rm -f {credentials}' EXIT; " + wrapped(steps, why)


@operation()
def app_populate(repo: str, ref: str, commands: list[str], layout: Layout = LAYOUT):
    """Each populate command at most once in the life of the database: it runs inside one database
    transaction that also writes its marker, so an interrupted run leaves neither its rows nor its
    marker, and a finished one leaves both (files/backend/deploy_marker.py `once`)."""
    found = yield from built_release_and_markers(repo, ref, layout, "the populate commands run after the build, once")
    if found is None:
        return
    _, release, markers = found
    if LEGACY_POPULATED in markers:
        host.noop(f"the database was populated ({markers[LEGACY_POPULATED]})")
        return
    pending = [command for command in commands if populate_marker(command) not in markers]
    if not pending:
        host.noop("every populate command ran once already")
        return
    asked_once.forget(DeployMarkers)
    for command in pending:
        once = f"{marker_script(layout, 'once')} {populate_marker(command)} {shlex.quote(command)}"
        yield run_app(layout, once, release=release)
