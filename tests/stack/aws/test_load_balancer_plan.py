"""The gateway's load balancing as plan actions and text: pure, no AWS."""

from stack.aws.balancing import Balancer, LoadBalancing, TargetGroup
from stack.aws.lb_plan import desired_health, lb_first, lb_record, plan_load_balancing, plan_teardown
from stack.aws.plan import Action, Instance, render
from stack.settings import settings_from

GROUP_ARN = "arn:tg/des-kong-8000"


def nodes(count: int) -> dict[str, Instance]:
    names = ["des-kong"] + [f"des-kong-{n}" for n in range(2, count + 1)]
    return {name: Instance(f"i-{index}", name, "running", "kong") for index, name in enumerate(names)}


def converged(config, instances) -> LoadBalancing:
    balancer = Balancer("arn:lb/des-gw", "des-gw", "des-gw-1.elb.amazonaws.com", True)
    balancer.listeners["arn:listener/1"] = ("TCP", 80, GROUP_ARN)
    group = TargetGroup(GROUP_ARN, "des-kong-8000", 8000, desired_health(config), config.gateway.deregistration_delay)
    group.targets = {instance.id: "healthy" for instance in instances.values()}
    return LoadBalancing(balancer, {"des-kong-8000": group})


def test_nothing_yet_renders_the_balancer_its_listener_group_and_registrations():
    config = settings_from({"gateway": {"nodes": 2}})
    assert render(plan_load_balancing(config, LoadBalancing(), {})) == "\n".join(
        [
            "  + load_balancer  des-gw  (network, internet-facing, cross-zone on)",
            "  + target_group   des-kong-8000  (TCP:8000, HTTP GET /gateway-health on the proxy port, 200 = healthy, "
            "deregistration delay 30 s)",
            "  + listener       des-gw  (TCP:80 -> des-kong-8000)",
            "  + target         des-kong  (register in des-kong-8000)",
            "  + target         des-kong-2  (register in des-kong-8000)",
            "",
            "Plan: 5 to add, 0 to change, 0 to destroy.",
        ]
    )


def test_converged_plans_nothing_and_one_node_without_the_setting_plans_nothing_either():
    config = settings_from({"gateway": {"nodes": 2}})
    instances = nodes(2)
    assert plan_load_balancing(config, converged(config, instances), instances) == []
    assert plan_load_balancing(settings_from({}), LoadBalancing(), nodes(1)) == []


def test_a_node_less_is_deregistered_and_drained_before_it_is_terminated():
    config = settings_from({"gateway": {"nodes": 2, "deregistration_delay": 15}})
    instances = nodes(3)
    actions = plan_load_balancing(config, converged(config, instances), instances)
    terminate = Action("-", "instance", "des-kong-3", "i-2: terminate", {"id": "i-2"})
    assert [(a.op, a.kind, a.name, a.detail) for a in lb_first([terminate, *actions])] == [
        ("-", "target", "des-kong-3", "deregister from des-kong-8000, drain up to 15 s"),
        ("-", "instance", "des-kong-3", "i-2: terminate"),
    ]


def test_no_longer_wanted_the_whole_balancer_goes_listener_first():
    config = settings_from({"gateway": {"nodes": 2}})
    instances = nodes(2)
    found = converged(config, instances)
    assert render(plan_load_balancing(settings_from({}), found, instances)) == "\n".join(
        [
            "  - listener       des-gw  (TCP:80: gateway.nodes is 1 and gateway.load_balancer is off)",
            "  - load_balancer  des-gw  (des-gw-1.elb.amazonaws.com: gateway.nodes is 1 and gateway.load_balancer "
            "is off)",
            "  - target_group   des-kong-8000  (2 nodes: gateway.nodes is 1 and gateway.load_balancer is off)",
            "",
            "Plan: 0 to add, 0 to change, 3 to destroy.",
        ]
    )
    assert [a.kind for a in plan_teardown(found)] == ["listener", "load_balancer", "target_group"]


def test_the_state_records_what_the_deploy_and_outputs_read():
    config = settings_from({"gateway": {"nodes": 2}})
    assert lb_record(converged(config, nodes(2)), config) == {
        "name": "des-gw",
        "arn": "arn:lb/des-gw",
        "dns_name": "des-gw-1.elb.amazonaws.com",
        "listener_arn": "arn:listener/1",
        "target_group": "des-kong-8000",
        "target_group_arn": GROUP_ARN,
    }
    assert lb_record(LoadBalancing(), config) is None
