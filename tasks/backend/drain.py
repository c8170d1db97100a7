"""Which backends of a batch are about to restart onto another release: the Kong nodes drain
those first (tasks/kong/drain.py). Asked by a Kong node's operation of the backends themselves
(read only), as app_switch (tasks/backend/switch.py) decides: the release it switches to is the
commit `ref` names in the backend's mirror (a preview: in the repository), a switch happens when
the release running is not that one.

A backend restarted only for changed settings (its env file, gunicorn's config) is not drained:
its socket, held by systemd, queues new connections during the restart.
"""

from pyinfra import state
from pyinfra.context import ctx_host

from tasks import asked_once
from tasks.backend.facts import GitRemoteRef, MirrorCommit, ServiceRelease, resolve_ref
from tasks.backend.layout import LAYOUT, Layout
from tasks.kong.drain import targets_drained, targets_restored


def _asked(backend, fact_cls, **kwargs):
    """The backend's own answer, asked once per run (tasks/asked_once.py): the backend's operations
    ask the same (app_build its mirror, app_switch what it serves) and reuse it, or this reuses theirs."""
    with ctx_host.use(backend):
        return asked_once.fact(fact_cls, **kwargs)


def wanted_commit(backend, repo: str, ref: str, layout: Layout, commit: str | None) -> str | None:
    if commit:
        return commit
    if state.is_executing:  # after the fetch: the mirror has it
        return (_asked(backend, MirrorCommit, repo=layout.repo, ref=ref) or {}).get("commit")
    refs = _asked(backend, GitRemoteRef, repo=repo, ref=ref)
    return None if isinstance(refs, dict) and refs.get("error") else resolve_ref(refs, ref) or ref


def restarting(
    batch: list, port: int, repo: str, ref: str, layout: Layout, commit: str | None = None, commit_of=None
) -> list[str]:
    """The targets ("ip:port") of the backends in `batch` (and in this run) that will switch release:
    to `commit`, to `commit_of(backend)` (a rollback: each backend its own), else to what `ref` names."""
    targets = []
    for backend in batch:
        if backend not in state.active_hosts:  # not in this run (--limit), or failed earlier
            continue
        wanted = commit_of(backend) if commit_of else wanted_commit(backend, repo, ref, layout, commit)
        serving = _asked(backend, ServiceRelease, current=layout.current, service=layout.service) or {}
        if wanted and serving.get("running") != layout.release(wanted):
            targets.append(f"{backend.data.private_ip}:{port}")
    return targets


def drain_batch(settings, batch: list, label: str, switch: dict) -> tuple:
    """Every Kong node stops sending `batch` new requests (those of its backends that will restart).
    Returns what restore_batch needs. Called by every host of the roll from the same line, so the
    operation is the same on all of them, between the previous batch and this batch's switch."""
    drained: list[str] = []
    operation = targets_drained(
        name=f"Stop Kong sending new requests to {label} (every Kong node)",
        restarting=lambda: restarting(
            batch,
            settings.app_port,
            switch["repo"],
            switch["ref"],
            switch.get("layout", LAYOUT),
            switch.get("commit"),
            switch.get("commit_of"),
        ),
        drained=drained,
        admin_port=settings.gateway.admin_port,
    )
    return operation, drained


def restore_batch(settings, label: str, drain: tuple) -> None:
    operation, drained = drain
    targets_restored(
        name=f"Let Kong send requests to {label} again (every Kong node)",
        drained=drained,
        admin_port=settings.gateway.admin_port,
        _if=operation.did_change,
    )
