"""Operations that move the backends to a new commit of the app without leaving the database or
the running service half-way.

The order (each an operation, so every backend finishes one step before any starts the next):
fetch the commit (no file of the running checkout changes) and, on the setup backend only, try its
migrations in a throw-away work tree; check it out; set the database up (migrate) from the setup
backend; populate once; restart a backend only when the database is set up for its commit.
A commit whose migrations cannot be made without answers, or would drop data, therefore stops the
deploy before any backend changes code. The migration files `makemigrations` writes (the app
commits none) are kept in the database (files/deploy_marker.py), so whichever backend sets up the
database next starts from the same history.
"""

import hashlib
import shlex

from pyinfra import host
from pyinfra.api import operation
from pyinfra.context import state

from stack.render.backend import LAYOUT, Layout
from tasks.app_ops import (HEX, DeployMarkers, FileText, GitCheckout, GitLocalCommit, GitRemoteRef, fail,
                           log_event, resolve_ref, run_app)

# The marker of the populate commands from before each had its own: all of them ran.
LEGACY_POPULATED = "populated"


def populate_marker(command: str) -> str:
    """Each populate command's own marker (64 characters at most, the column's size)."""
    return "populate:" + hashlib.sha256(command.encode()).hexdigest()[:32]


def makes_migrations(command: str) -> bool:
    return "makemigrations" in shlex.split(command)


def applies_migrations(command: str) -> bool:
    return "migrate" in shlex.split(command)


def marker_script(layout: Layout, action: str) -> str:
    return f"python {layout.marker_script} {action}"


def read_markers(layout: Layout) -> tuple[dict | None, str | None]:
    """(markers, None), or (None, error) when the database cannot be read."""
    answer = host.get_fact(DeployMarkers, layout=layout)
    if answer.get("error"):
        return None, answer["error"]
    return answer.get("markers") or {}, None


def remote_commit(repo: str, ref: str):
    """(commit, None) for `ref` of `repo` as this host sees it, or (None, a one-line failure)."""
    refs = host.get_fact(GitRemoteRef, repo=repo, ref=ref)
    if isinstance(refs, dict) and refs.get("error"):
        return None, (f"{host.name}: cannot read app_repo {repo}: {refs['error']}; check that this host can "
                      f"reach it (outbound access, DNS, credentials) or set app_repo to a mirror it can reach")
    target = resolve_ref(refs, ref)
    if target is None and not HEX.fullmatch(ref):
        return None, f"{host.name}: app_ref {ref!r} is neither a branch nor a tag of {repo}, nor a commit id"
    return target or ref, None


@operation()
def app_fetch(repo: str, ref: str, layout: Layout = LAYOUT, preflight: list[str] | None = None,
              allow_destructive: bool = False):
    """Bring `ref`'s commit into the checkout's repository without touching its files. With
    `preflight` (the setup backend, moving a database that has data): run those makemigrations
    commands for the new commit in a throw-away work tree and refuse migrations that would drop data."""
    path = layout.checkout
    current = host.get_fact(GitCheckout, path=path)
    if not state.is_executing and current is None:
        host.noop(f"{repo} is cloned at {ref} once git is installed")
        return
    wanted, problem = remote_commit(repo, ref)
    if problem:
        if state.is_executing:
            yield fail(problem)
        else:
            host.noop(problem)
        return
    if current and current["commit"].startswith(wanted) and current["origin"] == repo:
        host.noop(f"{path} is at {current['commit'][:12]} ({ref})")
        return
    git = f"runuser -u {layout.user} -- git"
    if current is None or current["origin"] != repo:
        # A new host, or another repository (another app: nothing of the old checkout, such as its
        # generated migrations, may leak into it): a clean clone, checked out at once.
        yield f"rm -rf {path} && {git} clone --quiet --no-checkout {shlex.quote(repo)} {path}"
        yield f"{git} -C {path} checkout --quiet --force --detach {wanted}"
        yield log_event(layout, f"cloned {repo} at {ref} = {wanted[:12]}")
        return
    yield f"{git} -C {path} fetch --quiet --tags --force origin"
    if preflight:
        yield from _preflight(layout, wanted, preflight, allow_destructive)


def _preflight(layout: Layout, commit: str, commands: list[str], allow_destructive: bool):
    markers, error = read_markers(layout)
    if error or "setup" not in markers:
        return  # a database never set up (or unreadable: the setup step says so) has no data to lose
    git = f"runuser -u {layout.user} -- git -C {layout.checkout}"
    tree = layout.preflight
    yield f"{git} worktree prune && runuser -u {layout.user} -- rm -rf {tree} && {git} worktree add --quiet --force --detach {tree} {commit}"
    steps = [marker_script(layout, "save-migrations")]  # from the running checkout (older deploys kept them only there)
    in_tree = [marker_script(layout, "restore-migrations"), *commands,
               marker_script(layout, "check-migrations" + (" --allow-destructive" if allow_destructive else ""))]
    checks = [run_app(layout, step) for step in steps] + [
        f"{layout.run_helper} --in {tree} {shlex.quote(step)}" for step in in_tree]
    # The run helper prints one line when a step fails (the step, its exit status, its last line of
    # output): catch it to make the deploy's one line.
    cleanup = f"{git} worktree remove --force {tree}"
    why = (f"{host.name}: cannot move the database to {commit[:12]}: $reason; every backend keeps its code: commit "
           f"the migrations in the app, or start from an empty database (README: Moving to another commit)")
    yield (f"if reason=$({{ {' && '.join(checks)}; }} 2>&1 >/dev/null); then {cleanup}; "
           f"else {cleanup}; echo \"{why}\" >&2; exit 1; fi")


@operation()
def app_checkout(repo: str, ref: str, layout: Layout = LAYOUT, setup_host=None, setup_reached: bool = True):
    """Check out the fetched commit of `ref` in the app folder, as the app user.

    Already there: no change. `setup_host`: the backend that migrates; when it is not in this run
    or failed earlier in it, a backend moves only to a commit the database is already set up for.
    """
    path = layout.checkout
    current = host.get_fact(GitCheckout, path=path)
    if current is None:
        if state.is_executing:
            yield fail(f"{host.name}: no checkout in {path}")
            return
        host.noop(f"{ref} is checked out with the clone")
        return
    if state.is_executing:
        wanted = host.get_fact(GitLocalCommit, path=path, ref=ref)  # the fetch step brought it in
    else:
        wanted, _ = remote_commit(repo, ref)  # a preview: nothing was fetched
    if wanted is None:
        yield fail(f"{host.name}: app_ref {ref!r} names no commit of {repo}")
        return
    if current and current["commit"] == wanted:
        host.noop(f"{path} is at {wanted[:12]} ({ref})")
        return
    if setup_host is not None and setup_host.name != host.name and (
            not setup_reached or setup_host in state.failed_hosts):
        markers, error = read_markers(layout)
        if (markers or {}).get("setup") != wanted:
            label = setup_host.data.get("name") or setup_host.name
            if setup_reached:
                why = "failed in this run: fix what it reported and re-run"
            else:
                why = "is not in this run: deploy both (e.g. --limit backends)"
            yield fail(f"{host.name}: the database is not set up for {wanted[:12]} and {label}, which runs the "
                       f"migrations, {why}" + (f" ({error})" if error else ""))
            return
    # --force: tracked files are the repository's (the deploy never edits them); untracked files,
    # such as the migrations makemigrations wrote, are kept.
    yield f"runuser -u {layout.user} -- git -C {path} checkout --quiet --force --detach {wanted}"
    yield log_event(layout, f"checked out {ref} = {wanted[:12]}")


@operation()
def app_setup(commands: list[str], layout: Layout = LAYOUT, allow_destructive: bool = False):
    """The app's setup commands (makemigrations, migrate) when the database was not yet set up for
    the checked-out commit: the saved migration files first, a check before anything is applied,
    then the new files saved and the commit recorded, all in the database."""
    checkout = host.get_fact(GitCheckout, path=layout.checkout)
    markers, error = read_markers(layout)
    if not state.is_executing and (checkout is None or error):
        host.noop("the setup commands run after the install")
        return
    if checkout is None:
        yield fail(f"{host.name}: no checkout in {layout.checkout}")
        return
    if error:
        yield fail(f"{host.name}: cannot read the deploy marker from the database: {error}")
        return
    if markers.get("setup") == checkout["commit"]:
        host.noop(f"the database is set up for {checkout['commit'][:12]}")
        return
    yield run_app(layout, marker_script(layout, "restore-migrations"))
    checked = False
    for command in commands:
        if applies_migrations(command) and not checked:
            yield run_app(layout, marker_script(layout, "check-migrations" + (
                " --allow-destructive" if allow_destructive else "")))
            checked = True
        yield run_app(layout, command)
    yield run_app(layout, marker_script(layout, "save-migrations"))
    yield run_app(layout, f"{marker_script(layout, 'set')} setup {checkout['commit']}")


@operation()
def app_populate(commands: list[str], layout: Layout = LAYOUT):
    """Each populate command at most once in the life of the database: it runs inside one database
    transaction that also writes its marker, so an interrupted run leaves neither its rows nor its
    marker, and a finished one leaves both (files/deploy_marker.py `once`)."""
    markers, error = read_markers(layout)
    if error:
        if state.is_executing:
            yield fail(f"{host.name}: cannot read the deploy marker from the database: {error}")
            return
        host.noop("the populate commands run after the install, once")
        return
    if LEGACY_POPULATED in markers:
        host.noop(f"the database was populated ({markers[LEGACY_POPULATED]})")
        return
    pending = [command for command in commands if populate_marker(command) not in markers]
    if not pending:
        host.noop("every populate command ran once already")
        return
    for command in pending:
        yield run_app(layout, f"{marker_script(layout, 'once')} {populate_marker(command)} {shlex.quote(command)}")


@operation()
def app_restart(changes: list, layout: Layout = LAYOUT):
    """Restart the service when one of `changes` (operations) changed or when it runs another commit
    than the checkout's (moved by an earlier run that failed or was interrupted before its restart),
    but never onto a commit the database is not set up for: then the running code keeps serving."""
    # What the operation did once it ran, or what it would do in a preview (--dry).
    changed = any(change.did_change() if change.is_complete() else change.will_change for change in changes)
    checkout = host.get_fact(GitCheckout, path=layout.checkout)
    running = host.get_fact(FileText, path=layout.running_commit)
    stale = bool(checkout and running and running.strip() != checkout["commit"])
    if not changed and not stale:
        host.noop(f"{layout.service} runs the current code and settings")
        return
    markers, error = read_markers(layout)
    if checkout and (markers or {}).get("setup") != checkout["commit"]:
        reason = error or f"the database is set up for {((markers or {}).get('setup') or 'no commit')[:12]}"
        yield fail(f"{host.name}: not restarted onto {checkout['commit'][:12]}: {reason}; the running code keeps "
                   f"serving (fix the setup backend's error above and re-run)")
        return
    yield f"systemctl restart {layout.service}"
    yield log_event(layout, f"restarted {layout.service}")
