"""The backends' operations: the app's repository and releases, secrets, the health check.

pyinfra 3 runs an operation's body when the operation executes, so each one here reads the host
at that moment and yields no command when there is nothing to do: a converged host reports no
change. How a release is set up and switched to: tasks/backend/setup.py and tasks/backend/switch.py.
What the mirror holds and what the remote names are asked once per run (tasks/asked_once.py): the
fetch, the build, the setup, the populate and the switch all need the same commit.
"""

import hashlib
import shlex
from io import StringIO

from pyinfra import host, inventory
from pyinfra.api import FileUploadCommand, operation
from pyinfra.context import state
from pyinfra.facts.server import Which

from tasks import asked_once
from tasks.backend.commands import as_app, fail, log_event, run_app, write_as_app
from tasks.backend.facts import (
    HEX,
    AppFileText,
    BuiltReleases,
    CommitFile,
    DeployMarkers,
    Directories,
    GitRemoteRef,
    HttpStatus,
    MirrorCommit,
    ServiceRelease,
    VenvWorks,
    resolve_ref,
)
from tasks.backend.layout import LAYOUT, Layout
from tasks.backend.lock import (
    CONSTRAINTS,
    LOCK_BYTES,
    digest,
    keep_lock,
    kept_lock,
    resolve,
    uv_installed,
    venv_built,
)
from tasks.uploads import is_in_place, managed, private_temp_file, summary_of, written

# What root reads of the app's files, at most: a build stamp (a commit id), the requirements.
STAMP_BYTES = 128
REQUIREMENTS_BYTES = 1 << 20


@operation()
def _secret_file(path: str, content: str, user: str = "root", group: str = "root", mode: str = "600"):
    """Like files.put, but never prints the content (no --diff of secrets) and the file is
    created with its final mode before the secret is written into it. Checked with the host's
    other managed files (tasks/uploads.py)."""
    digest = hashlib.sha256(content.encode()).hexdigest()
    if is_in_place(summary_of(path), digest, user, group, mode):
        host.noop(f"{path} is up to date")
        return
    written(path)
    yield f"install -m {mode} -o {user} -g {group} /dev/null {path}.new"
    # With sudo, pyinfra uploads to a temporary file first (SFTP as the SSH user) and copies it: a
    # new private file of a random name, so the secret is never readable by anyone else in /tmp.
    temporary, create = private_temp_file()
    yield from create
    yield FileUploadCommand(StringIO(content), f"{path}.new", remote_temp_filename=temporary)
    yield f"chmod {mode} {path}.new && chown {user}:{group} {path}.new && mv -f {path}.new {path}"


secret_file = managed(_secret_file)


@operation()
def check_health(address: str, port: int, path: str, backend: str, statuses: list[int]):
    """GET the health path like Kong's probes do; fail the deploy unless it answers one of `statuses`
    (gateway.active.healthy_statuses: the deploy and Kong agree on what healthy means).

    Reads only: it yields no command, so it never counts as a change.
    """
    if not state.is_executing:
        host.noop(f"{path} is checked after the deploy")
        return
    status = host.get_fact(HttpStatus, address=address, port=port, path=path)
    if status in statuses:
        host.noop(f"{path} answered {status}")
        return
    logs = f"its error log: journalctl -u {LAYOUT.service}, {LAYOUT.django_log}"
    if not isinstance(status, int):
        hint = f"the app does not answer; see {logs}"
    elif status >= 500:
        hint = f"the app fails on this path; see {logs}"
    elif status == 404:
        hint = NOT_FOUND_HINT
    else:
        hint = f"set gateway.health_path to a path answering {' or '.join(map(str, statuses))}"
    yield fail(f"{backend}: health check GET {path} answered {status}; {hint}")


NOT_FOUND_HINT = (
    "set gateway.health_path to a path this commit serves (Sprint2 commits after b0abfcb answer 404 "
    "or 500 on /despachos/reporte/; /health-check/ answers 200), or pin app_ref"
)


def remote_commit(repo: str, ref: str):
    """(commit, None) for `ref` of `repo` as this host sees it, or (None, a one-line failure)."""
    refs = asked_once.fact(GitRemoteRef, repo=repo, ref=ref)
    if isinstance(refs, dict) and refs.get("error"):
        return None, (
            f"{host.name}: cannot read app_repo {repo}: {refs['error']}; check that this host can "
            f"reach it (outbound access, DNS, credentials) or set app_repo to a mirror it can reach"
        )
    target = resolve_ref(refs, ref)
    if target is None and not HEX.fullmatch(ref):
        return None, f"{host.name}: app_ref {ref!r} is neither a branch nor a tag of {repo}, nor a commit id"
    return target or ref, None


def release_commit(repo: str, ref: str, layout: Layout) -> str | None:
    """The full commit `ref` names once fetched (a preview, before the fetch: what the remote says)."""
    if state.is_executing:
        mirror = asked_once.fact(MirrorCommit, repo=layout.repo, ref=ref) or {}
        return mirror.get("commit")
    commit, _ = remote_commit(repo, ref)
    return commit


def stop(problem: str, later: str):
    """An operation that cannot go on: a failure with `problem` when running; in a preview (the
    earlier steps have not run yet), `later` says when it will."""
    if state.is_executing:
        yield fail(problem)
    else:
        host.noop(later)


def no_commit(repo: str, ref: str, later: str):
    yield from stop(f"{host.name}: app_ref {ref!r} names no commit of {repo}", later)


@operation()
def app_fetch(repo: str, ref: str, layout: Layout = LAYOUT):
    """Bring `ref`'s commit into the backend's mirror of `repo` (a new repository: a new mirror).
    The running release is not touched."""
    mirror = asked_once.fact(MirrorCommit, repo=layout.repo, ref=ref)
    if not state.is_executing and mirror is None and not host.get_fact(Which, command="git"):
        host.noop(f"{repo} is mirrored once git is installed")
        return
    wanted, problem = remote_commit(repo, ref)
    if problem:
        yield from stop(problem, problem)
        return
    if mirror and mirror["origin"] == repo and (mirror["commit"] or "").startswith(wanted):
        host.noop(f"{ref} = {mirror['commit'][:12]} is fetched")
        return
    git = f"{as_app(layout)} git --git-dir={layout.repo}"
    asked_once.forget(MirrorCommit)
    if mirror is None or mirror["origin"] != repo:
        # A mirror made in its folder (the app user's, in root's home: not removed and cloned anew),
        # as `git clone --mirror` configures one; a new app_repo's refs replace the old ones.
        yield (
            f"{git} init --quiet --bare && {git} config remote.origin.url {shlex.quote(repo)} && "
            f"{git} config remote.origin.fetch '+refs/*:refs/*' && {git} config remote.origin.mirror true"
        )
    yield f"{git} fetch --quiet --prune --force --tags origin"
    yield log_event(layout, f"fetched {ref} from {repo}")


def resolver():
    """The backend that resolves a new release's lock: the first by name of those this run reaches
    and that have not failed (the setup backend when it is reached)."""
    reached = [
        backend
        for backend in inventory.get_group("backends")
        if backend in state.activated_hosts and state.is_host_in_limit(backend) and backend not in state.failed_hosts
    ]
    return min(reached, key=lambda backend: backend.data.get("name") or backend.name) if reached else host


@operation()
def app_lock(repo: str, ref: str, layout: Layout = LAYOUT):
    """Resolve the lock of `ref`'s release once, on one backend, as the app user (tasks/backend/lock.py),
    unless the controller keeps it already; the controller keeps what it resolved to."""
    commit = release_commit(repo, ref, layout)
    if commit is None:
        yield from no_commit(repo, ref, f"the lock of {ref} is resolved after the fetch")
        return
    if kept_lock(commit) is not None:
        host.noop(f"the lock of release {commit[:12]} is kept")
        return
    if not state.is_executing:
        host.noop(f"the lock of release {commit[:12]} is resolved when the deploy runs")
        return
    locker = resolver()
    if locker.name != host.name:
        host.noop(f"{locker.data.get('name') or locker.name} resolves the lock of release {commit[:12]}")
        return
    requirements = host.get_fact(
        CommitFile, repo=layout.repo, commit=commit, path="requirements.txt", limit=REQUIREMENTS_BYTES
    )
    try:
        command, path = resolve(layout, commit, requirements, CONSTRAINTS.read_text())
    except ValueError as error:
        yield fail(str(error))
        return
    yield uv_installed(layout)
    yield wrapped_lock(command, host.name, commit)
    text = host.get_fact(AppFileText, path=path, limit=LOCK_BYTES)
    if not text or "--hash=sha256:" not in text:
        yield fail(f"{host.name}: the lock of release {commit[:12]} ({path}) is empty or has no hashes")
        return
    keep_lock(commit, text)
    yield log_event(layout, f"resolved the lock of release {commit[:12]} ({digest(text)})")


def wrapped_lock(command: str, name: str, commit: str) -> str:
    """`command`, failing in one line with uv's last line when the resolution fails."""
    error = '$(echo "$reason" | grep -m 1 -i error || echo "$reason" | tail -n 1)'
    why = f"{name}: the requirements of release {commit[:12]} do not resolve: {error}"
    return f'if reason=$({{ {command}; }} 2>&1 >/dev/null); then :; else echo "{why}" >&2; exit 1; fi'


@operation()
def app_build(repo: str, ref: str, layout: Layout = LAYOUT):
    """Build `ref`'s release beside the running one: its tree, a virtualenv for its requirements
    (shared by releases that have the same, rebuilt if it does not run) and its static files.
    Complete when its stamp is written, last."""
    commit = release_commit(repo, ref, layout)
    if commit is None:
        yield from no_commit(repo, ref, f"the release of {ref} is built after the fetch")
        return
    release = layout.release(commit)
    stamp = host.get_fact(AppFileText, path=layout.built_stamp(commit), limit=STAMP_BYTES)
    built = (stamp or "").strip() == commit
    if built and host.get_fact(VenvWorks, path=f"{release}/.venv"):
        host.noop(f"release {commit[:12]} is built")
        return
    app, git = as_app(layout), f"{as_app(layout)} git --git-dir={layout.repo}"
    asked_once.forget(DeployMarkers)  # read with the release's python, which this (re)builds
    if not built:
        yield (
            f"{git} worktree prune && {app} mkdir -p {layout.releases} && {app} rm -rf {release} && "
            f"{git} worktree add --quiet --detach --force {release} {commit}"
        )
    if not state.is_executing:
        return
    # The release's lock, resolved once (app_lock) and kept by the controller: every backend builds
    # from the same bytes; the virtualenv is named by them.
    lock = kept_lock(commit)
    if lock is None:
        yield fail(f"{host.name}: release {commit[:12]} has no lock: resolving it failed (see above); nothing built")
        return
    key = digest(lock)
    venv = f"{layout.venvs}/{key}"
    if not host.get_fact(VenvWorks, path=venv):
        # Root's copy, in root's folder: what the app user installs from, and the record of what it holds.
        copy = f"{layout.locks}/{key}.txt"
        temporary, create = private_temp_file()
        yield f"mkdir -p -m 755 {layout.locks}"
        yield from create
        yield FileUploadCommand(StringIO(lock), f"{copy}.new", remote_temp_filename=temporary)
        yield f"chmod 644 {copy}.new && chown root:root {copy}.new && mv -f {copy}.new {copy}"
        yield uv_installed(layout)
        yield venv_built(layout, copy, venv)
        if built:
            yield log_event(
                layout, f"rebuilt the virtualenv of release {commit[:12]} (its python or gunicorn did not run)"
            )
    yield f"{app} ln -sfn {venv} {release}/.venv"
    if not built:
        yield run_app(layout, "python manage.py collectstatic --noinput", release=release)
        yield write_as_app(layout, commit, layout.built_stamp(commit))
        yield log_event(layout, f"built release {commit[:12]} ({ref})")


@operation()
def app_prune(keep: int, layout: Layout = LAYOUT):
    """Keep the newest `keep` built releases (and whatever is current or running); remove the rest,
    the virtualenvs no kept release uses, and the layout of before releases."""
    built = host.get_fact(BuiltReleases, releases=layout.releases)
    serving = asked_once.fact(ServiceRelease, current=layout.current, service=layout.service)
    live = {(serving[key] or "").rsplit("/", 1)[-1] for key in ("current", "running")}
    old = [commit for commit in built[keep:] if commit not in live]
    legacy = host.get_fact(Directories, paths=list(layout.legacy)) if serving["running"] else []
    if not old and not legacy:
        host.noop(f"{len(built)} releases kept")
        return
    app = as_app(layout)
    for commit in old:
        yield (
            f"{app} git --git-dir={layout.repo} worktree remove --force {layout.release(commit)} || "
            f"{app} rm -rf {layout.release(commit)}"
        )
    if old:
        yield (
            f"for venv in {layout.venvs}/*; do used=no; for link in {layout.releases}/*/.venv; do "
            f'[ "$(readlink $link)" = "$venv" ] && used=yes; done; [ $used = yes ] || {app} rm -rf "$venv"; '
            f"done; {app} git --git-dir={layout.repo} worktree prune"
        )
    for path in legacy:
        yield f"rm -rf {path}"
