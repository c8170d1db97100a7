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
(files/deploy_marker.py), so whichever backend sets the database up starts from the same history.
"""

import hashlib
import re
import shlex

from pyinfra import host
from pyinfra.api import FactBase, operation
from pyinfra.context import state
from pyinfra.facts.files import Directory
from pyinfra.facts.server import Which

from stack.render.backend import LAYOUT, Layout, extra_requirements, requirements_key
from tasks.app_ops import (HEX, DeployMarkers, FileText, GitRemoteRef, as_app, fail, log_event, resolve_ref,
                           run_app, write_as_app)

COMMIT = re.compile(r"[0-9a-f]{40}")
# The marker of the populate commands from before each had its own: all of them ran.
LEGACY_POPULATED = "populated"


def populate_marker(command: str) -> str:
    """Each populate command's own marker (64 characters at most, the column's size)."""
    return "populate:" + hashlib.sha256(command.encode()).hexdigest()[:32]


def applies_migrations(command: str) -> bool:
    return "migrate" in shlex.split(command)


def marker_script(layout: Layout, action: str) -> str:
    return f"python {layout.marker_script} {action}"


def read_markers(release: str) -> tuple[dict | None, str | None]:
    """(markers, None), or (None, error) when the database cannot be read (from `release`)."""
    answer = host.get_fact(DeployMarkers, release=release)
    if answer.get("error"):
        return None, answer["error"]
    return answer.get("markers") or {}, None


# --- facts --------------------------------------------------------------------------------------


class MirrorCommit(FactBase):
    """{"origin": url, "commit": what `ref` names in the mirror (a branch, a tag or a commit id) or
    None}, or None when there is no mirror."""

    def requires_command(self, repo, ref):
        return "git"

    def command(self, repo, ref):
        git = f"git -c safe.directory={repo} --git-dir={repo}"
        names = [f"refs/heads/{ref}^{{commit}}", f"refs/tags/{ref}^{{commit}}", f"{ref}^{{commit}}"]
        resolve = " || ".join(f"{git} rev-parse --verify --quiet {shlex.quote(name)}" for name in names)
        return f"if [ -d {repo} ]; then {git} config remote.origin.url; {resolve} || true; fi"

    def process(self, output):
        lines = [line.strip() for line in output if line.strip()]
        if not lines:
            return None
        commit = lines[1] if len(lines) > 1 and HEX.fullmatch(lines[1]) else None
        return {"origin": lines[0], "commit": commit}


class VenvWorks(FactBase):
    """Whether the virtualenv at `path` runs: its python imports gunicorn and its gunicorn starts
    (a stamp alone would not notice a deleted bin/gunicorn). Run as the app user: the virtualenv
    is that user's, and root must not run code it could change."""

    def command(self, path):
        run = as_app(LAYOUT)
        return (f"{run} {path}/bin/python -c 'import gunicorn' >/dev/null 2>&1 && "
                f"{run} {path}/bin/gunicorn --version >/dev/null 2>&1 && echo works || echo broken")

    def process(self, output):
        return list(output)[-1:] == ["works"]


class ServiceRelease(FactBase):
    """What a backend serves: {"current": the release `current` names, "running": the release the
    running gunicorn was started in (its working directory), "socket": whether systemd holds the port}."""

    def command(self, current, service):
        return (f"echo current=$(readlink -f {current} 2>/dev/null); "
                f"pid=$(systemctl show -p MainPID --value {service} 2>/dev/null); "
                f"echo running=$([ \"${{pid:-0}}\" != 0 ] && readlink /proc/$pid/cwd); "
                f"echo socket=$(systemctl is-active {service}.socket 2>/dev/null)")

    def process(self, output):
        values = dict(line.split("=", 1) for line in output if "=" in line)
        return {"current": values.get("current") or None, "running": values.get("running") or None,
                "socket": values.get("socket") == "active"}


class BuiltReleases(FactBase):
    """The built releases, newest first: [commit, ...] (by the time each was completed)."""

    def command(self, releases):
        return (f"if [ -d {releases} ]; then find {releases} -mindepth 2 -maxdepth 2 -name .deploy-built "
                "-printf '%T@ %h\\n' | sort -rn; fi")

    def process(self, output):
        # Only full commit ids: the folder is the app user's, and a release name goes into root's
        # commands (prune, rollback); anything else planted there is ignored.
        names = [line.split()[1].rsplit("/", 1)[-1] for line in output if len(line.split()) == 2]
        return [name for name in names if COMMIT.fullmatch(name)]

    @staticmethod
    def default():
        return []


# --- operations ---------------------------------------------------------------------------------


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


def release_commit(repo: str, ref: str, layout: Layout) -> str | None:
    """The full commit `ref` names once fetched (a preview, before the fetch: what the remote says)."""
    if state.is_executing:
        mirror = host.get_fact(MirrorCommit, repo=layout.repo, ref=ref) or {}
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
    mirror = host.get_fact(MirrorCommit, repo=layout.repo, ref=ref)
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
    git = f"{as_app(layout)} git"
    if mirror is None or mirror["origin"] != repo:
        yield f"{as_app(layout)} rm -rf {layout.repo} && {git} clone --quiet --mirror {shlex.quote(repo)} {layout.repo}"
    else:
        yield f"{git} --git-dir={layout.repo} fetch --quiet --prune --force --tags origin"
    yield log_event(layout, f"fetched {ref} from {repo}")


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
    built = (host.get_fact(FileText, path=layout.built_stamp(commit)) or "").strip() == commit
    if built and host.get_fact(VenvWorks, path=f"{release}/.venv"):
        host.noop(f"release {commit[:12]} is built")
        return
    app, git = as_app(layout), f"{as_app(layout)} git --git-dir={layout.repo}"
    if not built:
        yield (f"{git} worktree prune && {app} mkdir -p {layout.releases} && {app} rm -rf {release} && "
               f"{git} worktree add --quiet --detach --force {release} {commit}")
    if not state.is_executing:
        return
    requirements = host.get_fact(FileText, path=f"{release}/requirements.txt") or ""
    venv = f"{layout.venvs}/{requirements_key(requirements)}"
    if not host.get_fact(VenvWorks, path=venv):
        pip = f"{app} {venv}/bin/pip install --quiet --disable-pip-version-check"
        yield f"{app} rm -rf {venv} && {app} mkdir -p {layout.venvs} && {app} python3 -m venv {venv}"
        if requirements:
            yield f"{pip} -r {release}/requirements.txt"
        extras = extra_requirements(requirements)
        if extras:
            yield f"{pip} {' '.join(shlex.quote(extra) for extra in extras)}"
        if built:
            yield log_event(layout, f"rebuilt the virtualenv of release {commit[:12]} (its python or gunicorn did not run)")
    yield f"{app} ln -sfn {venv} {release}/.venv"
    if not built:
        yield run_app(layout, "python manage.py collectstatic --noinput", release=release)
        yield write_as_app(layout, commit, layout.built_stamp(commit))
        yield log_event(layout, f"built release {commit[:12]} ({ref})")


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


def _wrapped(steps: list[str], why: str) -> str:
    """Run `steps` in order; when one fails, print `why` with the run helper's one line in it."""
    return (f"if reason=$({{ {' && '.join(steps)}; }} 2>&1 >/dev/null); then :; "
            f"else echo \"{why}\" >&2; exit 1; fi")


@operation()
def app_setup(repo: str, ref: str, commands: list[str], layout: Layout = LAYOUT, allow_destructive: bool = False):
    """Set the database up for `ref`'s release, from that release, before any backend serves it:
    the saved migration history, the setup commands with a check that no new migration drops data
    before anything is applied, then the history and the commit recorded, all in the database."""
    found = yield from built_release_and_markers(repo, ref, layout, "the setup commands run after the build")
    if found is None:
        return
    commit, release, markers = found
    if markers.get("setup") == commit:
        host.noop(f"the database is set up for {commit[:12]}")
        return
    check = marker_script(layout, "check-migrations" + (" --allow-destructive" if allow_destructive else ""))
    steps = [marker_script(layout, "restore-migrations")]
    for command in commands:
        if applies_migrations(command) and check not in steps:
            # Saved before migrate applies them: a run interrupted after migrate must not find the
            # database migrated by files it no longer has (makemigrations would name them anew).
            steps += [check, marker_script(layout, "save-migrations")]
        steps.append(command)
    steps += [marker_script(layout, "save-migrations"), f"{marker_script(layout, 'set')} setup {commit}"]
    yield _wrapped([run_app(layout, step, release=release) for step in steps],
                   f"{host.name}: cannot set the database up for {commit[:12]}: $reason; every backend keeps "
                   f"serving its release: commit the migrations in the app, or start from an empty database "
                   f"(README: Moving to another commit)")


@operation()
def app_populate(repo: str, ref: str, commands: list[str], layout: Layout = LAYOUT):
    """Each populate command at most once in the life of the database: it runs inside one database
    transaction that also writes its marker, so an interrupted run leaves neither its rows nor its
    marker, and a finished one leaves both (files/deploy_marker.py `once`)."""
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
    for command in pending:
        once = f"{marker_script(layout, 'once')} {populate_marker(command)} {shlex.quote(command)}"
        yield run_app(layout, once, release=release)


HEALTH_PROBE = (
    "import http.client, sys, time\n"
    "address, port, path, statuses, wait = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5])\n"
    "deadline, status, wrong = time.time() + wait, 'no answer', 0\n"
    "while time.time() < deadline and wrong < 3:\n"
    "    try:\n"
    "        connection = http.client.HTTPConnection(address, port, timeout=10)\n"
    "        connection.request('GET', path, headers={'Host': address})\n"
    "        status = connection.getresponse().status\n"
    "        if str(status) in statuses.split(','):\n"
    "            print(status)\n"
    "            sys.exit(0)\n"
    "        wrong += 1\n"
    "    except OSError as error:\n"
    "        status = 'no answer (%s)' % error\n"
    "    time.sleep(1)\n"
    "print(status)\n"
    "sys.exit(1)\n"
)
# Not answering yet is waited for (up to `wait` s: a release starting); three answers with an
# unhealthy status are final, as for Kong's active checks (unhealthy.http_failures).


def wait_healthy(address: str, port: int, path: str, statuses: list[int], seconds: int) -> str:
    """A command that waits until GET `path` answers one of `statuses`; prints the last status."""
    return (f"python3 -c {shlex.quote(HEALTH_PROBE)} {address} {port} {shlex.quote(path)} "
            f"{','.join(map(str, statuses))} {seconds}")


def trial_port(port: int) -> int:
    return port + 10000 if port <= 55535 else port - 10000


def trial_run(layout: Layout, release: str, commit: str, port: int, path: str, statuses: list[int],
              wait: int) -> str:
    """A command that starts `release` in a gunicorn of its own on 127.0.0.1:<trial port> (one
    worker, the deploy's settings and secrets), asks its health path, stops it, and fails in one
    line when it did not answer healthy. Nothing the clients reach is touched."""
    trial, pidfile = trial_port(port), f"{layout.home}/.trial.pid"
    gunicorn = (f"exec gunicorn --config {layout.gunicorn_conf} --bind 127.0.0.1:{trial} --workers 1 "
                f"--pid {pidfile} {layout.app_package}.wsgi:application")
    probe = wait_healthy("127.0.0.1", trial, path, statuses, wait)
    # Whatever still listens on the trial port (a master that never wrote its pid file); not a
    # pattern match on command lines, which would also match this command's own shell.
    # Killed as the app user: the pid file is that user's to write, and root must not kill what it names.
    kill = f"{as_app(layout)} kill"
    leftover = (f"for pid in $(ss -Hltnp 'sport = :{trial}' | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); "
                f"do {kill} $pid; done")
    return (f"{as_app(layout)} rm -f {pidfile}; "
            f"{run_app(layout, gunicorn, quiet=True, release=release)} > /dev/null 2>&1 & "
            f"if status=$({probe}); then healthy=yes; else healthy=no; fi; "
            f"if [ -f {pidfile} ]; then {kill} $(cat {pidfile}) 2>/dev/null; fi; {leftover}; wait; "
            f"if [ $healthy = no ]; then echo \"{host.name}: release {commit[:12]} answered $status on {path} "
            f"(tried on 127.0.0.1:{trial}, beside the running release); nothing switched; the roll stopped "
            f"here\" >&2; exit 1; fi")


@operation()
def app_switch(repo: str, ref: str, batch: list, backends: list, changes: list, address: str, port: int,
               path: str, statuses: list[int], layout: Layout = LAYOUT, commit: str | None = None,
               require_setup: bool = True, wait: int = 60, setup_left_out: str | None = None):
    """Make the backends of `batch` serve `ref`'s release (or `commit`'s): move `current`, restart
    gunicorn behind systemd's socket, wait until `path` answers healthy. Also restarts a backend
    whose settings changed (`changes`) or whose running release is not `current`'s. A release that
    does not answer healthy is switched back; then this backend fails and later batches do not switch.
    `setup_left_out`: the setup backend's name when this run does not reach it (`--limit`)."""
    if host not in batch:
        host.noop("switches in another batch")
        return
    commit = commit or release_commit(repo, ref, layout)
    if commit is None:
        yield from no_commit(repo, ref, f"{ref} is switched to once built")
        return
    release = layout.release(commit)
    serving = host.get_fact(ServiceRelease, current=layout.current, service=layout.service)
    changed = any(change.did_change() if change.is_complete() else change.will_change for change in changes)
    if serving["current"] == release and serving["running"] == release and serving["socket"] and not changed:
        host.noop(f"serves release {commit[:12]}")
        return
    stopped = [backend.name for backend in backends if backend in state.failed_hosts and backend is not host]
    if stopped:
        yield fail(f"{host.name}: not switched to {commit[:12]}: the roll stopped at {', '.join(stopped)}")
        return
    if require_setup:
        markers, error = read_markers(release)
        if (markers or {}).get("setup") != commit:
            reason = error or f"the database is set up for {((markers or {}).get('setup') or 'no commit')[:12]}"
            if setup_left_out and not error:
                reason += (f" and {setup_left_out}, which runs the migrations, is not in this run: deploy both "
                           f"(e.g. --limit backends)")
            yield fail(f"{host.name}: not switched to {commit[:12]}: {reason}; it keeps serving its release")
            return
    app, service = as_app(layout), layout.service
    if serving["running"] != release:
        # A new release answers first beside the running one: a broken one never serves a request.
        yield trial_run(layout, release, commit, port, path, statuses, wait)
    link = f"{app} ln -sfn {{}} {layout.current}.next && {app} mv -T {layout.current}.next {layout.current}"
    probe = wait_healthy(address, port, path, statuses, wait)
    # What this backend serves now is what it goes back to (not `current`: an interrupted run may
    # have moved the link without a restart); never the layout of before releases (no .venv there).
    previous = next((path for path in (serving["running"], serving["current"])
                     if path and path.startswith(f"{layout.releases}/")), "")
    yield (f"previous={shlex.quote(previous)}; {link.format(release)} && "
           # The first switch of a backend deployed before releases: its gunicorn held the port itself.
           f"{{ systemctl is-active --quiet {service}.socket || {{ systemctl stop {service}; "
           f"systemctl enable --now {service}.socket; }}; }} && systemctl restart {service} && "
           f"if status=$({probe}); then "
           f"echo \"$(date -u +%Y-%m-%dT%H:%M:%SZ) {commit}\" | {app} tee -a {layout.history} > /dev/null; "
           f"else "
           f"if [ -n \"$previous\" ] && [ \"$previous\" != {release} ]; then {link.format('$previous')} && "
           f"systemctl restart {service}; {probe} > /dev/null; back=\"switched back to ${{previous##*/}}\"; "
           f"else back='no earlier release to go back to'; fi; "
           f"echo \"{host.name}: release {commit[:12]} answered $status on {path}; $back; the roll stopped here\" >&2; "
           f"exit 1; fi")
    yield log_event(layout, f"serving release {commit[:12]} ({ref})")


@operation()
def app_prune(keep: int, layout: Layout = LAYOUT):
    """Keep the newest `keep` built releases (and whatever is current or running); remove the rest,
    the virtualenvs no kept release uses, and the layout of before releases."""
    built = host.get_fact(BuiltReleases, releases=layout.releases)
    serving = host.get_fact(ServiceRelease, current=layout.current, service=layout.service)
    live = {(serving[key] or "").rsplit("/", 1)[-1] for key in ("current", "running")}
    old = [commit for commit in built[keep:] if commit not in live]
    legacy = [path for path in layout.legacy if host.get_fact(Directory, path=path)] \
        if serving["running"] else []
    if not old and not legacy:
        host.noop(f"{len(built)} releases kept")
        return
    app = as_app(layout)
    for commit in old:
        yield f"{app} git --git-dir={layout.repo} worktree remove --force {layout.release(commit)} || " \
              f"{app} rm -rf {layout.release(commit)}"
    if old:
        yield (f"for venv in {layout.venvs}/*; do used=no; for link in {layout.releases}/*/.venv; do "
               f"[ \"$(readlink $link)\" = \"$venv\" ] && used=yes; done; [ $used = yes ] || {app} rm -rf \"$venv\"; "
               f"done; {app} git --git-dir={layout.repo} worktree prune")
    for path in legacy:
        yield f"rm -rf {path}"
