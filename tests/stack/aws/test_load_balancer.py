"""The gateway's Network Load Balancer against moto over HTTP: what apply creates, re-applies,
scaling the Kong nodes, destroy, and the rolling deploy's out/in of one node."""

import pytest

from stack.providers import provider_named
from stack.settings import load_settings

NODES_2 = {"des-kong", "des-kong-2"}
CREATED = sorted(
    ["CreateLoadBalancer", "ModifyLoadBalancerAttributes"]
    + ["CreateTargetGroup", "ModifyTargetGroupAttributes"]
    + ["CreateListener"]
    + ["RegisterTargets"] * 2
)


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch):
    monkeypatch.setattr("stack.aws.load_balancer.POLL_SECONDS", 0.005)


def words(text: str) -> str:
    return " ".join(text.split())


def balancers(aws) -> list[dict]:
    return aws.client("elbv2").describe_load_balancers()["LoadBalancers"]


def target_groups(aws) -> list[dict]:
    return aws.client("elbv2").describe_target_groups()["TargetGroups"]


def registered(aws, group_arn: str) -> set[str]:
    answer = aws.client("elbv2").describe_target_health(TargetGroupArn=group_arn)
    return {entry["Target"]["Id"] for entry in answer["TargetHealthDescriptions"]}


def ids(aws, *names: str) -> set[str]:
    instances = aws.instances()
    return {instances[name]["InstanceId"] for name in names}


def test_two_nodes_make_exactly_one_nlb_one_listener_one_target_group_both_registered(aws):
    aws.configure(gateway={"nodes": 2})
    aws.recorder.start()
    code, out, err = aws.run("--no-wait")
    assert code == 0, err
    mutating = aws.recorder.mutating()
    assert sorted(op for op in mutating if op not in ("RunInstances", "CreateSecurityGroup")) == sorted(
        CREATED + ["ImportKeyPair"] + ["AuthorizeSecurityGroupIngress"] * 3
    )
    assert mutating.count("RunInstances") == 5  # db, 2 backends, 2 Kong nodes
    # AWS registers only running instances: after the launches (and their wait).
    assert mutating.index("RegisterTargets") > max(i for i, op in enumerate(mutating) if op == "RunInstances")
    plan = words(out)
    for line in [
        "+ instance des-kong (t2.small",
        "+ instance des-kong-2 (t2.small",
        "+ load_balancer des-gw (network, internet-facing, cross-zone on)",
        "+ target_group des-kong-8000 (TCP:8000, HTTP GET /gateway-health on the proxy port, 200 = healthy, "
        "deregistration delay 30 s)",
        "+ listener des-gw (TCP:80 -> des-kong-8000)",
        "+ target des-kong (register in des-kong-8000)",
        "+ target des-kong-2 (register in des-kong-8000)",
        "Plan: 20 to add, 0 to change, 0 to destroy.",
    ]:
        assert line in plan, line

    [balancer] = balancers(aws)
    assert (balancer["LoadBalancerName"], balancer["Type"], balancer["Scheme"]) == (
        "des-gw",
        "network",
        "internet-facing",
    )
    elbv2 = aws.client("elbv2")
    attributes = elbv2.describe_load_balancer_attributes(LoadBalancerArn=balancer["LoadBalancerArn"])["Attributes"]
    assert {"Key": "load_balancing.cross_zone.enabled", "Value": "true"} in attributes
    [group] = target_groups(aws)
    assert {key: group[key] for key in group if key not in ("TargetGroupArn", "VpcId", "LoadBalancerArns")} == {
        "TargetGroupName": "des-kong-8000",
        "Protocol": "TCP",
        "Port": 8000,
        "TargetType": "instance",
        "HealthCheckEnabled": True,
        "HealthCheckProtocol": "HTTP",
        "HealthCheckPort": "traffic-port",
        "HealthCheckPath": "/gateway-health",
        "HealthCheckIntervalSeconds": 10,
        "HealthCheckTimeoutSeconds": 5,
        "HealthyThresholdCount": 2,
        "UnhealthyThresholdCount": 2,
        "Matcher": {"HttpCode": "200"},
        "IpAddressType": "ipv4",
    }
    attributes = elbv2.describe_target_group_attributes(TargetGroupArn=group["TargetGroupArn"])["Attributes"]
    assert {"Key": "deregistration_delay.timeout_seconds", "Value": "30"} in attributes
    [listener] = elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]
    assert (listener["Protocol"], listener["Port"]) == ("TCP", 80)
    assert listener["DefaultActions"] == [{"Type": "forward", "TargetGroupArn": group["TargetGroupArn"]}]
    assert registered(aws, group["TargetGroupArn"]) == ids(aws, *NODES_2)
    tagged = elbv2.describe_tags(
        ResourceArns=[balancer["LoadBalancerArn"], group["TargetGroupArn"], listener["ListenerArn"]]
    )["TagDescriptions"]
    for entry in tagged:
        tags = {tag["Key"]: tag["Value"] for tag in entry["Tags"]}
        assert (tags["Project"], tags["ManagedBy"], tags["Role"]) == ("des", "provision.py", "kong"), entry

    # one node per zone, in turn
    zones = {name: raw["Placement"]["AvailabilityZone"] for name, raw in aws.instances().items()}
    assert zones["des-kong"] != zones["des-kong-2"]
    # the Kong group's rules are today's: the NLB keeps client addresses, so the proxy port stays open
    kong_group = aws.groups()["des-kong-sg"]
    assert sorted((p["FromPort"], p["IpRanges"][0]["CidrIp"]) for p in kong_group["IpPermissions"]) == [
        (22, "0.0.0.0/0"),
        (8000, "0.0.0.0/0"),
    ]

    state = aws.state()
    assert set(state["hosts"]) >= NODES_2 and state["hosts"]["des-kong-2"]["role"] == "kong"
    assert state["aws"]["load_balancer"] == {
        "name": "des-gw",
        "arn": balancer["LoadBalancerArn"],
        "dns_name": balancer["DNSName"],
        "listener_arn": listener["ListenerArn"],
        "target_group": "des-kong-8000",
        "target_group_arn": group["TargetGroupArn"],
    }
    assert f"kong_proxy_url = http://{balancer['DNSName']}/despachos/reporte/" in out
    code, again, _ = aws.run("outputs")
    assert code == 0 and f"kong_proxy_url = http://{balancer['DNSName']}/despachos/reporte/" in again


def test_a_second_apply_plans_nothing_and_makes_no_mutating_call(aws):
    aws.configure(gateway={"nodes": 2})
    assert aws.run("--no-wait")[0] == 0
    aws.recorder.start()
    code, out, err = aws.run("--no-wait")
    assert code == 0, err
    calls = aws.recorder.operations()
    assert "DescribeTargetHealth" in calls and aws.recorder.mutating() == []
    assert "No changes" in out


def test_scaling_two_three_two_registers_then_drains_and_terminates_the_right_node(aws, monkeypatch):
    aws.configure(gateway={"nodes": 2})
    assert aws.run("--no-wait")[0] == 0
    first_two = ids(aws, *NODES_2)
    [group] = target_groups(aws)

    aws.configure(gateway={"nodes": 3})
    aws.recorder.start()
    code, out, err = aws.run("--no-wait")
    assert code == 0, err
    assert aws.recorder.mutating() == ["RunInstances", "RegisterTargets"]
    assert "+ target des-kong-3 (register in des-kong-8000)" in words(out)
    third = ids(aws, "des-kong-3")
    assert registered(aws, group["TargetGroupArn"]) == first_two | third
    assert ids(aws, *NODES_2) == first_two  # untouched

    # Real AWS keeps a leaving target "draining" for the deregistration delay: show it twice.
    reads = {"draining": 2, "deregistered": False}
    aws.inject(monkeypatch, "DeregisterTargets", "", "", hook=lambda params: reads.update(deregistered=True))

    def draining(parsed):
        if reads["draining"] and reads["deregistered"]:
            reads["draining"] -= 1
            [leaving] = third
            parsed["TargetHealthDescriptions"].append(
                {"Target": {"Id": leaving, "Port": 8000}, "TargetHealth": {"State": "draining"}}
            )

    aws.rewrite(monkeypatch, "DescribeTargetHealth", draining)
    aws.configure(gateway={"nodes": 2})
    aws.recorder.start()
    code, out, err = aws.run("--no-wait", "--yes")
    assert code == 0, err
    mutating = aws.recorder.mutating()
    assert mutating == ["DeregisterTargets", "TerminateInstances"]  # drained first, then terminated
    assert reads["draining"] == 0
    assert "- target des-kong-3 (deregister from des-kong-8000, drain up to 30 s)" in words(out)
    lines = out.splitlines()
    drain = [lines.index(line) for line in lines if "draining from the load balancer: des-kong-3 (draining)" in line]
    assert len(drain) == 1  # the same line again only after REPORT_SECONDS
    assert lines.index("  drained des-kong-3") < next(i for i, line in enumerate(lines) if "terminating" in line)
    assert registered(aws, group["TargetGroupArn"]) == first_two
    assert set(aws.instances()) >= NODES_2 and "des-kong-3" not in aws.instances()
    assert "des-kong-3" not in aws.state()["hosts"]


def test_destroy_takes_listener_balancer_and_group_down_first_and_leaves_nothing_tagged(aws):
    aws.configure(gateway={"nodes": 2})
    assert aws.run("--no-wait")[0] == 0
    aws.recorder.start()
    code, out, err = aws.run("destroy", "--yes")
    assert code == 0, err
    mutating = aws.recorder.mutating()
    order = ["DeleteListener", "DeleteLoadBalancer", "DeleteTargetGroup", "TerminateInstances"]
    assert [op for op in mutating if op in order] == order
    plan = words(out)
    assert "- listener des-gw (TCP:80)" in plan
    assert "- load_balancer des-gw (des-gw-" in plan
    assert "- target_group des-kong-8000 (2 nodes)" in plan
    assert balancers(aws) == [] and target_groups(aws) == []
    tagging = aws.client("resourcegroupstaggingapi")
    left = tagging.get_resources(TagFilters=[{"Key": "Project", "Values": ["des"]}])["ResourceTagMappingList"]
    assert [entry["ResourceARN"] for entry in left if ":elasticloadbalancing:" in entry["ResourceARN"]] == []
    assert aws.instances() == {} and aws.groups() == {} and aws.state() is None


def test_destroy_only_one_node_drains_it_first(aws):
    aws.configure(gateway={"nodes": 2})
    assert aws.run("--no-wait")[0] == 0
    [group] = target_groups(aws)
    keep = ids(aws, "des-kong")
    aws.recorder.start()
    code, out, err = aws.run("destroy", "--only", "des-kong-2", "--yes")
    assert code == 0, err
    assert aws.recorder.mutating() == ["DeregisterTargets", "TerminateInstances"]
    assert registered(aws, group["TargetGroupArn"]) == keep
    assert len(balancers(aws)) == 1


def test_one_node_without_the_setting_makes_no_load_balancer_and_then_never_asks_elbv2(aws):
    aws.recorder.start()
    code, out, err = aws.run("--no-wait")
    assert code == 0, err
    # With no state yet it looks (a state lost with a load balancer left must find it), only reading.
    assert [op for op in aws.recorder.operations() if "LoadBalancer" in op or "TargetGroup" in op] == [
        "DescribeLoadBalancers",
        "DescribeTargetGroups",
    ]
    assert balancers(aws) == [] and target_groups(aws) == []
    assert "load_balancer" not in aws.state()["aws"]
    aws.recorder.start()
    assert aws.run("--no-wait")[0] == 0
    assert not [op for op in aws.recorder.operations() if "LoadBalancer" in op or "TargetGroup" in op]


def test_one_node_behind_a_load_balancer_when_asked_and_back_to_none(aws):
    aws.configure(gateway={"load_balancer": True})
    assert aws.run("--no-wait")[0] == 0
    [group] = target_groups(aws)
    assert registered(aws, group["TargetGroupArn"]) == ids(aws, "des-kong")
    assert len(balancers(aws)) == 1

    aws.configure()
    aws.recorder.start()
    code, out, err = aws.run("--no-wait", "--yes")
    assert code == 0, err
    assert aws.recorder.mutating() == ["DeleteListener", "DeleteLoadBalancer", "DeleteTargetGroup"]
    assert "- load_balancer des-gw (des-gw-" in words(out)
    assert "gateway.nodes is 1 and gateway.load_balancer is off" in out
    assert balancers(aws) == [] and target_groups(aws) == []
    assert "load_balancer" not in aws.state()["aws"]
    assert "kong_proxy_url = http://" in out and ":8000/despachos/reporte/" in out  # the node's own address again


def test_drift_is_put_back_and_a_new_proxy_port_gets_a_new_group(aws):
    aws.configure(gateway={"nodes": 2})
    assert aws.run("--no-wait")[0] == 0
    elbv2 = aws.client("elbv2")
    [balancer] = balancers(aws)
    [group] = target_groups(aws)
    elbv2.modify_load_balancer_attributes(
        LoadBalancerArn=balancer["LoadBalancerArn"],
        Attributes=[{"Key": "load_balancing.cross_zone.enabled", "Value": "false"}],
    )
    elbv2.modify_target_group(TargetGroupArn=group["TargetGroupArn"], HealthCheckPath="/")
    aws.configure(gateway={"nodes": 2, "deregistration_delay": 10})
    aws.recorder.start()
    code, out, err = aws.run("--no-wait")
    assert code == 0, err
    assert sorted(aws.recorder.mutating()) == [
        "ModifyLoadBalancerAttributes",
        "ModifyTargetGroup",
        "ModifyTargetGroupAttributes",
    ]
    plan = words(out)
    assert "~ load_balancer des-gw (turn cross-zone load balancing on)" in plan
    assert (
        "~ target_group des-kong-8000 (HTTP GET /gateway-health on the proxy port, 200 = healthy, "
        "deregistration delay 30 -> 10 s)" in plan
    )
    aws.recorder.start()
    assert aws.run("--no-wait")[0] == 0 and aws.recorder.mutating() == []

    aws.configure(gateway={"nodes": 2, "deregistration_delay": 10, "proxy_port": 8080})
    aws.recorder.start()
    code, out, err = aws.run("--no-wait", "--yes")
    assert code == 0, err
    mutating = aws.recorder.mutating()
    assert [op for op in mutating if "Security" not in op] == [
        "CreateTargetGroup",
        "ModifyTargetGroupAttributes",
        "ModifyListener",
        "RegisterTargets",
        "RegisterTargets",
        "DeleteTargetGroup",
    ]
    [new] = target_groups(aws)
    assert (new["TargetGroupName"], new["Port"]) == ("des-kong-8080", 8080)
    assert registered(aws, new["TargetGroupArn"]) == ids(aws, *NODES_2)
    [listener] = elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]
    assert listener["DefaultActions"][0]["TargetGroupArn"] == new["TargetGroupArn"]
    assert aws.state()["aws"]["load_balancer"]["target_group_arn"] == new["TargetGroupArn"]
    assert "- target_group des-kong-8000 (port 8000: no longer the proxy port)" in words(out)


def test_a_balancer_of_that_name_that_is_not_the_projects_is_refused(aws):
    elbv2 = aws.client("elbv2")
    ec2 = aws.client("ec2")
    subnets = [subnet["SubnetId"] for subnet in ec2.describe_subnets()["Subnets"]][:2]
    elbv2.create_load_balancer(Name="des-gw", Subnets=subnets, Type="network")
    aws.configure(gateway={"nodes": 2})
    aws.recorder.start()
    code, out, err = aws.run("--no-wait")
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        "error: a load balancer named des-gw exists but is not project des's (no Project/ManagedBy tags): "
        "delete or rename it, or choose another project_prefix"
    )
    assert aws.recorder.mutating() == []


def test_the_rolling_deploy_takes_a_node_out_and_puts_it_back(aws, capsys):
    aws.configure(gateway={"nodes": 2})
    assert aws.run("--no-wait")[0] == 0
    [group] = target_groups(aws)
    settings = load_settings()
    provider = provider_named("aws")
    assert provider.gateway_balanced(settings)
    capsys.readouterr()

    provider.gateway_out(settings, "des-kong-2")
    assert registered(aws, group["TargetGroupArn"]) == ids(aws, "des-kong")
    provider.gateway_in(settings, "des-kong-2")
    assert registered(aws, group["TargetGroupArn"]) == ids(aws, *NODES_2)
    assert capsys.readouterr().out == (
        "  taking des-kong-2 out of the load balancer (up to 30 s for its requests to finish)\n"
        "  des-kong-2 is out of the load balancer\n"
        "  putting des-kong-2 back into the load balancer\n"
        "  des-kong-2 is healthy in the load balancer\n"
    )


def test_outputs_without_a_state_find_the_load_balancer_by_its_tags(aws):
    aws.configure(gateway={"nodes": 2})
    assert aws.run("--no-wait")[0] == 0
    recorded = aws.state()["aws"]["load_balancer"]
    (aws.home / "state.json").unlink()
    aws.recorder.start()
    code, out, err = aws.run("outputs")
    assert code == 0, err
    assert aws.recorder.mutating() == []
    assert aws.state()["aws"]["load_balancer"] == recorded
    assert f"kong_proxy_url = http://{recorded['dns_name']}/despachos/reporte/" in out


def test_an_account_without_elbv2_rights_still_runs_one_kong_host(aws, monkeypatch):
    aws.inject(monkeypatch, "DescribeLoadBalancers", "AccessDenied", "User is not authorized to perform elbv2")
    code, out, err = aws.run("--no-wait")
    assert code == 0, err
    assert "des-kong" in aws.instances()
    aws.configure(gateway={"nodes": 2})
    code, out, err = aws.run("--no-wait")
    assert code == 1
    assert err == (
        "error: DescribeLoadBalancers failed: AccessDenied: User is not authorized to perform elbv2 (hint: this "
        "account may not do that: ask your admin, or use an allowed region and type)\n"
    )
