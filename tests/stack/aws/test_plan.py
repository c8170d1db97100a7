"""The plan as data and as text: pure, no AWS."""

from stack.aws.plan import Action, Actual, Alarm, Instance, plan_apply, plan_destroy, recover_supported, render
from stack.aws.rules import Rule, desired_rules
from stack.settings import Settings, defaults


def settings(**changes) -> Settings:
    values = defaults().as_dict()
    values.update(changes)
    return Settings(**values)


def converged(config: Settings) -> Actual:
    """An account where everything of `config` exists."""
    actual = Actual(vpc_id="vpc-1", key_pair_exists=True)
    for index, (group, rules) in enumerate(desired_rules(config).items()):
        actual.groups[group] = f"sg-{index}"
        actual.rules[group] = {rule: f"sgr-{index}-{n}" for n, rule in enumerate(rules)}
    for index, name in enumerate(["des-db", "des-backend-a", "des-kong"]):
        actual.instances[name] = Instance(f"i-{index}", name, "running")
    return actual


def test_empty_account_renders_like_terraform():
    config = settings(backends=["a"], admin_cidr="203.0.113.7/32")
    assert render(plan_apply(config, Actual(vpc_id="vpc-1"), "us-east-1", image="ami-1 noble")) == "\n".join(
        [
            "  + key_pair        des-key  (ed25519, generated locally)",
            "  + security_group  des-kong-sg  (in vpc-1)",
            "  + security_group  des-backends-sg  (in vpc-1)",
            "  + security_group  des-db-sg  (in vpc-1)",
            "  + ingress         des-kong-sg  (tcp/22 from 203.0.113.7/32)",
            "  + ingress         des-kong-sg  (tcp/8000 from 0.0.0.0/0)",
            "  + ingress         des-backends-sg  (tcp/22 from 203.0.113.7/32)",
            "  + ingress         des-backends-sg  (tcp/8080 from des-kong-sg)",
            "  + ingress         des-db-sg  (tcp/22 from 203.0.113.7/32)",
            "  + ingress         des-db-sg  (tcp/5432 from des-backends-sg)",
            "  + instance        des-db  (t2.nano, ami-1 noble)",
            "  + instance        des-backend-a  (t2.nano, ami-1 noble)",
            "  + instance        des-kong  (t2.small, ami-1 noble)",
            "",
            "Plan: 13 to add, 0 to change, 0 to destroy.",
        ]
    )


def test_converged_account_plans_nothing():
    config = settings(backends=["a"])
    assert plan_apply(config, converged(config), "us-east-1") == []
    assert render([]) == "No changes: the AWS resources match the settings."


def test_drift_stopped_hosts_and_removed_backends():
    config = settings(backends=["a"])
    actual = converged(config)
    actual.rules["des-db-sg"][Rule("tcp", 5432, 5432, "0.0.0.0/0")] = "sgr-open"
    actual.instances["des-db"].state = "stopped"
    actual.instances["des-backend-c"] = Instance("i-9", "des-backend-c", "running")
    actual.duplicates = [Instance("i-8", "des-kong", "running")]
    actions = plan_apply(config, actual, "us-east-1")
    assert [(a.op, a.kind, a.name, a.detail) for a in actions] == [
        ("-", "ingress", "des-db-sg", "tcp/5432 from 0.0.0.0/0"),
        ("~", "instance", "des-db", "i-0: start (stopped)"),
        ("-", "instance", "des-backend-c", "i-9: terminate"),
        ("-", "instance", "des-kong", "i-8: terminate (duplicate)"),
    ]
    assert actions[0].data["id"] == "sgr-open"
    assert [a.destructive for a in actions] == [True, False, True, True]


def test_alarms_follow_the_instances():
    config = settings(backends=["a"], manager_email="ops@example.com")
    actual = converged(config)
    actual.topic_arn = "arn:topic"
    actual.subscriptions = {"ops@example.com": "PendingConfirmation"}
    recover = "arn:aws:automate:us-east-1:ec2:recover"
    for name, instance in actual.instances.items():
        actual.alarms[f"{name}-status-check"] = Alarm("StatusCheckFailed", instance.id, ("arn:topic",))
        actual.alarms[f"{name}-auto-recover"] = Alarm(
            "StatusCheckFailed_System", instance.id, tuple(sorted((recover, "arn:topic")))
        )
    assert plan_apply(config, actual, "us-east-1") == []
    actual.alarms["des-kong-status-check"] = Alarm("StatusCheckFailed", "i-old", ("arn:topic",))
    actual.alarms["des-backend-z-status-check"] = Alarm("StatusCheckFailed", "i-z", ("arn:topic",))
    assert [(a.op, a.name) for a in plan_apply(config, actual, "us-east-1")] == [
        ("~", "des-kong-status-check"),
        ("-", "des-backend-z-status-check"),
    ]


def test_destroy_only_one_host_takes_its_alarms_only():
    config = settings(backends=["a"], manager_email="ops@example.com")
    actual = converged(config)
    actual.alarms = {
        "des-kong-status-check": Alarm("StatusCheckFailed", "i-2", ()),
        "des-db-status-check": Alarm("StatusCheckFailed", "i-0", ()),
    }
    assert [(a.kind, a.name) for a in plan_destroy(config, actual, ("des-kong",))] == [
        ("instance", "des-kong"),
        ("alarm", "des-kong-status-check"),
    ]
    everything = plan_destroy(config, actual)
    assert [a.kind for a in everything] == ["instance"] * 3 + ["alarm"] * 2 + ["security_group"] * 3 + ["key_pair"]


def test_recover_action_only_for_ebs_only_current_types():
    assert [
        t
        for t in [
            "t2.nano",
            "t3.small",
            "m5.large",
            "c7g.large",
            "m5d.large",
            "i3.large",
            "m5.metal",
            "t1.micro",
            "r5dn.large",
        ]
        if recover_supported(t)
    ] == ["t2.nano", "t3.small", "m5.large", "c7g.large"]


def test_summary_counts_each_kind():
    actions = [Action("+", "instance", "a"), Action("~", "instance", "b"), Action("-", "ingress", "c")]
    assert render(actions).splitlines()[-1] == "Plan: 1 to add, 1 to change, 1 to destroy."
