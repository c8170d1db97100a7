"""Switching backends to a release, one batch at a time, each waiting for the health path."""

import shlex

from pyinfra import host
from pyinfra.api import operation
from pyinfra.context import state

from tasks import asked_once
from tasks.backend.commands import as_app, fail, log_event, trial_run, wait_healthy
from tasks.backend.facts import ServiceRelease
from tasks.backend.layout import LAYOUT, Layout
from tasks.backend.operations import NOT_FOUND_HINT, no_commit, release_commit
from tasks.backend.setup import read_markers


@operation()
def app_trial(
    repo: str,
    ref: str,
    backends: list,
    port: int,
    path: str,
    statuses: list[int],
    layout: Layout = LAYOUT,
    commit: str | None = None,
    require_setup: bool = True,
    wait: int = 60,
):
    """Start the release each backend is about to switch to beside the one it runs, on every
    backend at once before the first batch, and fail where it does not answer healthy: a broken
    release never serves a request, and no batch switches (app_switch: the roll stopped). A backend
    that will not switch, or that runs the release already, is not tried."""
    serving = asked_once.fact(ServiceRelease, current=layout.current, service=layout.service)
    commit = commit or release_commit(repo, ref, layout)
    if commit is None:
        host.noop("tried once built")
        return
    release = layout.release(commit)
    if serving["running"] == release:
        host.noop(f"runs release {commit[:12]}")
        return
    stopped = any(backend in state.failed_hosts for backend in backends if backend is not host)
    markers, _ = read_markers(release) if require_setup else ({"setup": commit}, None)
    if stopped or (markers or {}).get("setup") != commit:
        host.noop(f"not tried: it does not switch to {commit[:12]} (its switch says why)")
        return
    yield trial_run(host.name, layout, release, commit, port, path, statuses, wait)


@operation()
def app_switch(
    repo: str,
    ref: str,
    batch: list,
    backends: list,
    changes: list,
    address: str,
    port: int,
    path: str,
    statuses: list[int],
    layout: Layout = LAYOUT,
    commit: str | None = None,
    require_setup: bool = True,
    wait: int = 60,
    setup_left_out: str | None = None,
):
    """Make the backends of `batch` serve `ref`'s release (or `commit`'s): move `current`, restart
    gunicorn behind systemd's socket, wait until `path` answers healthy. Also restarts a backend
    whose settings changed (`changes`) or whose running release is not `current`'s. A release that
    does not answer healthy is switched back; then this backend fails and later batches do not switch.
    `setup_left_out`: the setup backend's name when this run does not reach it (`--limit`)."""
    # What each backend serves is read by the first batch's operation, on every backend at once:
    # a later batch then asks nothing of a backend that already serves the release (nothing
    # changes a backend before its own batch; its switch makes the next reads ask again).
    serving = asked_once.fact(ServiceRelease, current=layout.current, service=layout.service)
    if host not in batch:
        host.noop("switches in another batch")
        return
    commit = commit or release_commit(repo, ref, layout)
    if commit is None:
        yield from no_commit(repo, ref, f"{ref} is switched to once built")
        return
    release = layout.release(commit)
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
                reason += (
                    f" and {setup_left_out}, which runs the migrations, is not in this run: deploy both "
                    f"(e.g. --limit backends)"
                )
            yield fail(f"{host.name}: not switched to {commit[:12]}: {reason}; it keeps serving its release")
            return
    app, service = as_app(layout), layout.service
    asked_once.forget(ServiceRelease)  # the prune after it reads what this backend serves then
    # `current` is root's link in root's home (the app user can neither move nor replace it).
    link = f"ln -sfn {{}} {layout.current}.next && mv -T {layout.current}.next {layout.current}"
    probe = wait_healthy(address, port, path, statuses, wait)
    # What this backend serves now is what it goes back to (not `current`: an interrupted run may
    # have moved the link without a restart); never the layout of before releases (no .venv there).
    previous = next(
        (path for path in (serving["running"], serving["current"]) if path and path.startswith(f"{layout.releases}/")),
        "",
    )
    # Only the release changes: the running gunicorn re-execs into it and serves until the new one
    # has imported the app. Anything else (its settings, its unit, a gunicorn without a socket or
    # from before releases) takes a restart, which reads them anew.
    reexec = not changed and serving["socket"] and (serving["running"] or "").startswith(f"{layout.releases}/")
    live = go_live(service, wait) if reexec else f"systemctl restart {service}"
    yield (
        f"previous={shlex.quote(previous)}; {link.format(release)} && "
        # The first switch of a backend deployed before releases: its gunicorn held the port itself.
        f"{{ systemctl is-active --quiet {service}.socket || {{ systemctl stop {service}; "
        f"systemctl enable --now {service}.socket; }}; }} && {live} && "
        f"if status=$({probe}); then "
        f'echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) {commit}" | {app} tee -a {layout.history} > /dev/null; '
        f"else "
        f'if [ -n "$previous" ] && [ "$previous" != {release} ]; then {link.format("$previous")} && '
        f'systemctl restart {service}; {probe} > /dev/null; back="switched back to ${{previous##*/}}"; '
        f"else back='no earlier release to go back to'; fi; "
        # A 404 is most often the health path itself (it is in gunicorn.conf: changing it restarts).
        f'hint=; [ "$status" != 404 ] || hint={shlex.quote("; " + NOT_FOUND_HINT)}; '
        f'echo "{host.name}: release {commit[:12]} answered $status on {path}; $back; the roll stopped here$hint" >&2; '
        f"exit 1; fi"
    )
    yield log_event(layout, f"serving release {commit[:12]} ({ref})")


def go_live(service: str, wait: int) -> str:
    """A command moving the running gunicorn to the release `current` names without a moment in
    which no worker accepts: USR2 makes the master start a new one from the link (gunicorn.conf's
    pre_exec), beside itself on the same socket; once that one has imported the app and names
    itself the main process (when_ready), the old master stops gracefully (TERM: its workers finish
    their requests; the queued connections stay in the socket for the new workers). A new master
    that does not take over within `wait` s: a restart instead (it reads the link anew)."""
    main = f"systemctl show -p MainPID --value {service}"
    ticks = wait * 10
    return (
        f"old=$({main}); case $old in ''|0) systemctl restart {service};; *) "
        f"systemctl kill --signal=USR2 --kill-whom=main {service} && n=0 && "
        f'while [ "$({main})" = "$old" ] && [ $n -lt {ticks} ]; do sleep 0.1; n=$((n + 1)); done && '
        f'if [ "$({main})" = "$old" ]; then systemctl restart {service}; else kill -TERM $old; n=0; '
        f"while kill -0 $old 2>/dev/null && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done; fi;; esac"
    )
