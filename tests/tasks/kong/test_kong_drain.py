"""The drain at the gateway around a backend switch, on fake hosts: before each batch restarts
onto a new release every Kong node marks its targets unhealthy and waits, then the batch
switches (with its health gate), then every node marks them healthy again."""

from stack.settings import settings_from
from tasks.backend.deploy import deploy_backend, rollback_backend
from tasks.backend.facts import AppFileText, BuiltReleases, GitRemoteRef, MirrorCommit, ServiceRelease
from tasks.backend.layout import LAYOUT
from tasks.kong.admin import drain_wait_command, mark_targets_command
from tasks.kong.facts import DockerContainer
from tests.harness import run_deploy
from tests.tasks.backend.test_backend_deploy import (  # noqa: F401 (kept_locks: autouse)
    ME,
    NEW,
    OLD,
    SECRETS,
    host_facts,
    kept_locks,
    release,
)

SETTINGS = settings_from({"app_ref": "main"})
BACKENDS = [
    ("des-backend-a", {"private_ip": "10.0.1.11", "name": "des-backend-a"}),
    ("des-backend-b", {"private_ip": "10.0.1.12", "name": "des-backend-b"}),
]
MIRROR = "ref=main, repo=/srv/sprint2/repo.git"
REMOTE = f"ref=main, repo={SETTINGS.app_repo}"
SERVING = "current=/srv/sprint2/current, service=sprint2-app"
KONG_CONTAINER = "container=kong, label=stack.kong.spec"
DRAIN = "Stop Kong sending new requests to batch {n} of 2 (des-backend-{key}) (every Kong node)"
RESTORE = "Let Kong send requests to batch {n} of 2 (des-backend-{key}) again (every Kong node)"
SWITCH = "Switch to the release of main, batch {n} of 2 (des-backend-{key})"


def backend(commit: str, running: str) -> dict:
    """A backend as the Kong node reads it: the mirror (and, in a preview, the remote) names
    `commit`, gunicorn runs `running`."""
    return {
        GitRemoteRef: {REMOTE: {"refs/heads/main": commit}},
        MirrorCommit: {MIRROR: {"origin": "x", "commit": commit}},
        ServiceRelease: {SERVING: {"current": release(running), "running": release(running), "socket": True}},
    }


def on_kong(a: dict, b: dict, kong_runs: bool = True):
    return run_deploy(
        deploy_backend,
        facts={DockerContainer: {KONG_CONTAINER: {"label": "x", "running": kong_runs}}},
        groups=["kong"],
        other_hosts={"backends": BACKENDS},
        other_facts={"des-backend-a": a, "des-backend-b": b},
        kwargs={"settings": SETTINGS, "secrets": SECRETS},
    )


def test_a_kong_node_drains_each_batch_before_its_switch_and_restores_it_after():
    run = on_kong(backend(NEW, OLD), backend(NEW, OLD))
    assert run.names == [
        DRAIN.format(n=1, key="a"),
        RESTORE.format(n=1, key="a"),
        DRAIN.format(n=2, key="b"),
        RESTORE.format(n=2, key="b"),
    ]  # a Kong node runs nothing else of the backends' deploy
    assert run.op(DRAIN.format(n=1, key="a")).commands == [
        mark_targets_command(8001, ["10.0.1.11:8080"], "unhealthy"),
        drain_wait_command(2),
    ]
    assert run.op(RESTORE.format(n=1, key="a")).commands == [mark_targets_command(8001, ["10.0.1.11:8080"], "healthy")]
    assert run.op(DRAIN.format(n=2, key="b")).commands[0] == mark_targets_command(8001, ["10.0.1.12:8080"], "unhealthy")
    assert run.op(RESTORE.format(n=2, key="b")).commands == [mark_targets_command(8001, ["10.0.1.12:8080"], "healthy")]


def test_the_admin_api_calls_are_exact():
    assert mark_targets_command(8001, ["10.0.1.11:8080"], "unhealthy").endswith(
        "' 8001 /upstreams/backend-cluster/targets/10.0.1.11:8080/unhealthy"
    )
    assert drain_wait_command(2) == "sleep 2"


def test_the_switch_comes_between_the_drain_and_the_restore_on_the_backend():
    """The same operations on a backend (doing nothing there) order its switch between them."""
    run = run_deploy(
        deploy_backend,
        facts=host_facts(SETTINGS, commit=OLD, remote=NEW),
        groups=["backends"],
        host_data=ME,
        other_hosts={"db": [("des-db", {"private_ip": "10.0.1.10"})], "backends": BACKENDS[1:]},
        kwargs={"settings": SETTINGS, "secrets": SECRETS},
    )
    order = [
        DRAIN.format(n=1, key="a"),
        SWITCH.format(n=1, key="a"),
        RESTORE.format(n=1, key="a"),
        DRAIN.format(n=2, key="b"),
        SWITCH.format(n=2, key="b"),
        RESTORE.format(n=2, key="b"),
    ]
    assert [name for name in run.names if name in order] == order
    assert not run.op(DRAIN.format(n=1, key="a")).changes  # not a Kong node: nothing to mark


def test_a_backend_already_serving_the_release_is_not_drained():
    run = on_kong(backend(NEW, NEW), backend(NEW, OLD))
    assert run.changed == [DRAIN.format(n=2, key="b"), RESTORE.format(n=2, key="b")]


def test_nothing_is_drained_where_kong_does_not_run():
    assert on_kong(backend(NEW, OLD), backend(NEW, OLD), kong_runs=False).changed == []


def test_a_second_deploy_drains_nothing():
    assert on_kong(backend(NEW, NEW), backend(NEW, NEW)).changed == []


def rolled_back(running: str, history: list[str]) -> dict:
    """A backend as a rollback reads it: it runs `running`, served the `history` commits in turn."""
    return {
        **backend(running, running),
        BuiltReleases: {f"releases={LAYOUT.releases}": [NEW, OLD]},
        AppFileText: {
            f"end=True, limit=65536, path={LAYOUT.history}": "".join(
                f"2026-11-28T10:00:0{n}Z {c}\n" for n, c in enumerate(history)
            )
        },
    }


def test_a_rollback_drains_each_backend_that_goes_back_to_another_release():
    run = run_deploy(
        rollback_backend,
        facts={DockerContainer: {KONG_CONTAINER: {"label": "x", "running": True}}},
        groups=["kong"],
        other_hosts={"backends": BACKENDS},
        other_facts={"des-backend-a": rolled_back(NEW, [OLD, NEW]), "des-backend-b": rolled_back(OLD, [OLD])},
        kwargs={"settings": SETTINGS},
    )
    # a goes back from NEW to OLD (drained); b has nothing earlier to go back to (its own run stops).
    assert run.changed == [DRAIN.format(n=1, key="a"), RESTORE.format(n=1, key="a")]
    assert run.op(DRAIN.format(n=1, key="a")).commands[0] == mark_targets_command(8001, ["10.0.1.11:8080"], "unhealthy")
