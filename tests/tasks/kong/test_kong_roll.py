"""Rolling gateway changes on fake hosts: one node at a time, each answering before the next; a
recreate leaves the load balancer first (deregister, drain), and comes back once healthy; the only
node without a load balancer is recreated only when the operator agrees to the outage."""

import shlex

import pytest

from stack.errors import UserError
from stack.settings import settings_from
from tasks.kong import balancer
from tasks.kong.admin import ready_command
from tasks.kong.commands import docker_run_argv, ports_free_command
from tasks.kong.deploy import deploy_kong
from tasks.kong.facts import DockerImage
from tasks.kong.render import CANDIDATE, CONFIG, container_spec, render_kong_yml
from tests.harness import run_deploy
from tests.tasks.kong.test_kong_deploy import TWO, FakeProvider, no_load_balancer, serving_host  # noqa: F401 (autouse)

CONTAINER = "Ensure the Kong container runs the current spec"
RELOAD = "Apply a changed Kong config (parse, then reload)"
NEW_IMAGE = {"gateway": {"image": "kong:2.8.1-alpine", "nodes": 2}}


def roll(settings, facts, others, failed=()):
    """deploy_kong on the node @fake/target, the other Kong nodes being `others`."""
    return run_deploy(
        deploy_kong,
        facts=facts,
        groups=["kong"],
        other_hosts={"backends": TWO, "kong": [(name, {}) for name in others]},
        kwargs={"settings": settings},
        failed=failed,
    )


def image_changed(before, after):
    facts = serving_host(before, render_kong_yml(before, ["10.0.1.11", "10.0.1.12"]))
    facts[DockerImage] = {"image=kong:2.8.1-alpine": None}
    return facts


@pytest.fixture
def load_balancer(monkeypatch):
    monkeypatch.setattr(balancer, "_provider", lambda: FakeProvider(True))


def test_an_image_change_recreates_one_node_at_a_time_out_of_the_load_balancer(load_balancer):
    before, after = settings_from({"gateway": {"nodes": 2}}), settings_from(NEW_IMAGE)
    run = roll(after, image_changed(before, after), others=["des-kong"])
    first, second = f"{CONTAINER}, node 1 of 2 (@fake/des-kong)", f"{CONTAINER}, node 2 of 2 (@fake/target)"
    names = run.names
    assert names.index(first) + 1 == names.index(second)  # the other node's turn comes first
    assert run.op(first).commands == []  # nothing of this node changes in another node's turn
    assert run.op(second).commands == [
        ports_free_command({8000: "gateway.proxy_port", 8001: "gateway.admin_port"}),
        run.op(second).commands[1],  # parsed with the new image before the node leaves the load balancer
        "call take_out",  # deregister, and wait out the drain
        f"install -m 0644 {CANDIDATE} {CONFIG}",
        "docker rm --force kong >/dev/null 2>&1 || true",
        shlex.join(docker_run_argv(container_spec(after))),
        ready_command(8001),  # healthy on its own admin API
        "call put_back",  # register, and wait until the load balancer sees it healthy
    ]
    assert "kong:2.8.1-alpine kong config parse" in run.op(second).commands[1]


def test_the_first_node_goes_first_and_the_others_wait_their_turn(load_balancer):
    before = settings_from({"gateway": {"nodes": 3}})
    after = settings_from({"gateway": {"image": "kong:2.8.1-alpine", "nodes": 3}})
    run = roll(after, image_changed(before, after), others=["zz-kong-2", "zz-kong-3"])
    turns = [name for name in run.names if name.startswith(CONTAINER)]
    assert turns == [
        f"{CONTAINER}, node 1 of 3 (@fake/target)",
        f"{CONTAINER}, node 2 of 3 (@fake/zz-kong-2)",
        f"{CONTAINER}, node 3 of 3 (@fake/zz-kong-3)",
    ]
    assert [run.op(name).changes for name in turns] == [True, False, False]
    assert "call take_out" in run.op(turns[0]).commands


def test_a_config_change_reloads_one_node_at_a_time_each_answering_before_the_next():
    settings = settings_from({"gateway": {"nodes": 2}})
    run = roll(settings, serving_host(settings, render_kong_yml(settings, ["10.0.1.11"])), others=["des-kong"])
    assert run.changed == ["Upload the candidate Kong config", f"{RELOAD}, node 2 of 2 (@fake/target)"]
    parse, install, reload, ready = run.op(f"{RELOAD}, node 2 of 2 (@fake/target)").commands
    assert "docker exec kong kong config parse" in parse and install.startswith("install -m 0644")
    assert (reload, ready) == ("docker exec kong kong reload", ready_command(8001))
    assert run.names.index(f"{RELOAD}, node 1 of 2 (@fake/des-kong)") < run.names.index(
        f"{RELOAD}, node 2 of 2 (@fake/target)"
    )


def test_two_nodes_without_a_load_balancer_roll_without_asking():
    """Local hosts: no load balancer to leave, but the other node serves meanwhile: no outage."""
    before, after = settings_from({"gateway": {"nodes": 2}}), settings_from(NEW_IMAGE)
    commands = (
        roll(after, image_changed(before, after), others=["des-kong"])
        .op(f"{CONTAINER}, node 2 of 2 (@fake/target)")
        .commands
    )
    assert not [command for command in commands if command.startswith("call ")]
    assert commands[-1] == ready_command(8001)


def test_the_only_node_without_a_load_balancer_asks_before_the_outage():
    before, after = settings_from({}), settings_from({"gateway": {"image": "kong:2.8.1-alpine"}})
    commands = roll(after, image_changed(before, after), others=[]).op(CONTAINER).commands
    assert commands[2:4] == ["call outage_agreed", f"install -m 0644 {CANDIDATE} {CONFIG}"]


def test_the_only_node_behind_a_load_balancer_leaves_it_instead_of_asking(load_balancer):
    before = settings_from({"gateway": {"load_balancer": True}})
    after = settings_from({"gateway": {"image": "kong:2.8.1-alpine", "load_balancer": True}})
    commands = roll(after, image_changed(before, after), others=[]).op(CONTAINER).commands
    assert [command for command in commands if command.startswith("call ")] == ["call take_out", "call put_back"]


class Logged:
    def __init__(self):
        self.lines = []

    def log_styled(self, message, **kwargs):
        self.lines.append(message)


def test_an_agreed_outage_goes_ahead_and_an_unasked_one_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    host = Logged()
    assert balancer.outage_agreed(None, host, "des-kong", True) is True and host.lines == []
    assert balancer.outage_agreed(None, host, "des-kong", False) is False
    assert host.lines == [
        "des-kong: recreating the Kong container of the only gateway node is an outage (no load balancer): "
        "re-run with --data gateway_outage=yes to accept it, or set gateway.nodes: 2; the running container "
        "keeps serving"
    ]


def test_load_balancer_steps_call_the_provider_and_fail_in_one_line(monkeypatch, capsys):
    calls = []

    class Provider:
        def gateway_out(self, settings, name):
            calls.append(("out", name))
            print("  draining")  # progress goes to stderr: stdout is pyinfra's --json report

        def gateway_in(self, settings, name):
            raise UserError("timed out waiting for des-kong to be healthy")

    monkeypatch.setattr(balancer, "_provider", lambda: Provider())
    host = Logged()
    assert balancer.take_out(None, host, settings_from({}), "des-kong") is True
    assert balancer.put_back(None, host, settings_from({}), "des-kong") is False
    assert calls == [("out", "des-kong")]
    assert host.lines == ["des-kong: timed out waiting for des-kong to be healthy"]
    assert capsys.readouterr().out == ""


def test_a_node_that_failed_stops_the_roll_and_the_next_keeps_serving():
    settings = settings_from({"gateway": {"nodes": 2}})
    facts = serving_host(settings, render_kong_yml(settings, ["10.0.1.11"]))
    run = roll(settings, facts, others=["des-kong"], failed=("des-kong",))
    assert run.op(f"{RELOAD}, node 2 of 2 (@fake/target)").commands == [
        "echo '@fake/target: not reloaded: the roll stopped at @fake/des-kong; the old "
        "/opt/kong/declarative/kong.yml serves' >&2; exit 1"
    ]
