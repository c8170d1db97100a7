"""Carrying out plan actions (see plan.py) for apply and destroy alike: one method per kind of
action, each recording what it created or removed in the state at once, so a failure half-way
leaves what exists recorded and a re-run (which finds everything by tags) finishes the job."""

import sys
from itertools import groupby

from stack import known_hosts
from stack.aws import alerts, console, groups, instances
from stack.aws import load_balancer as lb
from stack.aws.balancing import Balancer, TargetGroup
from stack.aws.clients import Clients
from stack.aws.discover import aws_host
from stack.aws.keys import create_key_pair
from stack.aws.lb_plan import group_name, kong_nodes, lb_record
from stack.aws.plan import Action, Actual, desired_alarms, instance_type_of, key_pair_name
from stack.aws.rds_run import RdsSteps
from stack.aws.rules import group_names
from stack.settings import Settings
from stack.state import State, save_state

SSH_TIMEOUT = 600  # seconds; a t2.nano's first boot with cloud-init takes 1-3 minutes
# Removed by one call per kind when destroying everything (`together`), one call per resource
# when apply removes what the settings no longer want. Groups always go together: delete_groups
# first drops the rules by which they name each other.
MANY_AT_ONCE = ("instance", "alarm", "security_group", "target")
VERBS = {
    "target": "deregister",
    "listener": "delete",
    "load_balancer": "delete",
    "target_group": "delete",
    "instance": "terminate",
    "ingress": "revoke",
    "alarm": "delete",
    "sns_topic": "delete",
    "sns_subscription": "unsubscribe",
    "security_group": "delete",
    "key_pair": "delete",
    "rds_instance": "delete",
    "db_subnet_group": "delete",
}
NOUNS = {
    "target": "gateway node",
    "listener": "listener",
    "load_balancer": "load balancer",
    "target_group": "target group",
    "instance": "instance",
    "ingress": "rule",
    "alarm": "alarm",
    "sns_topic": "topic",
    "sns_subscription": "subscription",
    "security_group": "security group",
    "key_pair": "key pair",
    "rds_instance": "RDS instance",
    "db_subnet_group": "DB subnet group",
}


def progress(line: str) -> None:
    print(line, flush=True)


def warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr, flush=True)


def connect(settings: Settings) -> Clients:
    aws = Clients(settings.region)
    account, _ = aws.identity()  # cheap check of the credentials first
    progress(f"AWS account {account}, region {settings.region}, project {settings.project_prefix}")
    return aws


def described(actions: list[Action]) -> str:
    """'terminate 2 instances (des-backend-c, des-backend-d), revoke 1 rule' for the prompt."""
    parts = []
    for kind in VERBS:
        chosen = [a for a in actions if a.kind == kind]
        if chosen:
            names = ", ".join(sorted({a.name for a in chosen}))
            plural = "s" if len(chosen) > 1 else ""
            parts.append(f"{VERBS[kind]} {len(chosen)} {NOUNS[kind]}{plural} ({names})")
    return ", ".join(parts)


class Run(RdsSteps):
    """Carries out plan actions, recording each created or removed resource in the state at once.
    `together`: destroy's way, each kind of removal in one call and one progress line."""

    def __init__(
        self,
        aws: Clients,
        settings: Settings,
        actual: Actual,
        state: State,
        image_id: str = "",
        subnets: dict[str, list[dict]] | None = None,
        together: bool = False,
    ):
        self.aws, self.settings, self.actual, self.state, self.image_id = aws, settings, actual, state, image_id
        self.prefix = settings.project_prefix
        self.subnets = subnets or {}
        self.together = together
        self.to_wait: set[str] = {
            i.id for n, i in actual.instances.items() if n in state.hosts and i.state != "running"
        }
        self.terminated: list[str] = []

    def save(self) -> None:
        self.state.aws = {
            **(self.state.aws or {}),
            "groups": dict(self.actual.groups),
            "topic_arn": self.actual.topic_arn,
        }
        record = lb_record(self.actual.lb, self.settings)
        if record:
            self.state.aws["load_balancer"] = record
        else:
            self.state.aws.pop("load_balancer", None)
        save_state(self.state)
        console.follow_addresses(self.state)  # a new public IP renames the host's pinned keys

    def do_all(self, actions: list[Action]) -> None:
        """In plan order; the new rules of one group go to AWS in one call."""
        rules: dict[str, list[Action]] = {}
        for (op, kind), run in groupby(actions, key=lambda action: (action.op, action.kind)):
            chosen = list(run)
            if (op, kind) == ("+", "ingress"):
                for action in chosen:
                    rules.setdefault(action.name, []).append(action)
                continue
            self._authorize(rules)
            if op == "-" and kind in MANY_AT_ONCE:
                removals = {
                    "instance": self._terminate,
                    "alarm": self._delete_alarms,
                    "security_group": self._delete_groups,
                    "target": self._deregister,
                }[kind]
                # Leaving nodes drain together: one deregistration delay, not one per node.
                many = self.together or kind in ("security_group", "target")
                for batch in [chosen] if many else [[action] for action in chosen]:
                    removals(batch)
                continue
            for action in chosen:
                getattr(self, f"_{action.op_name}_{action.kind}")(action)
        self._authorize(rules)

    # "+" ------------------------------------------------------------------------------------------
    def _create_key_pair(self, action: Action) -> None:
        path = create_key_pair(self.aws.ec2, self.settings)
        self.actual.key_pair_exists = True
        progress(f"  created key pair {action.name} (private key {path})")

    def _create_security_group(self, action: Action) -> None:
        group_id = groups.create_group(self.aws.ec2, self.prefix, action.name, self.actual.vpc_id)
        self.actual.groups[action.name] = group_id
        self.actual.rules[action.name] = {}
        self.save()
        progress(f"  created security group {action.name} ({group_id})")

    def _authorize(self, pending: dict[str, list[Action]]) -> None:
        for group, actions in pending.items():
            wanted = {action.data["rule"]: action.data["text"] for action in actions}
            made = groups.authorize(self.aws.ec2, self.actual.groups[group], wanted, self.actual.groups)
            self.actual.rules[group].update(made)
            for action in actions:
                progress(f"  allowed {group} {action.detail}")
        pending.clear()

    def _create_instance(self, action: Action) -> None:
        role, key, kind = action.data["role"], action.data["key"], action.data["type"]
        group_id = self.actual.groups[group_names(self.prefix)[role]]
        subnets = self.subnets[kind]
        if role == "kong":
            # One node per zone, in turn: losing a zone takes only its nodes out of the load balancer.
            turn = kong_nodes(self.settings).index(action.name) % len(subnets)
            subnets = subnets[turn:] + subnets[:turn]
        instance = instances.launch(
            self.aws.ec2,
            self.prefix,
            action.name,
            role,
            key,
            kind,
            self.image_id,
            key_pair_name(self.settings),
            group_id,
            subnets,
            progress,
        )
        self.actual.instances[action.name] = instance
        self.state.hosts[action.name] = aws_host(self.settings, instance, role, key)
        self.save()
        self.to_wait.add(instance.id)
        progress(f"  launched {action.name} ({instance.id}, {kind}, {instance.zone})")

    def _create_sns_topic(self, action: Action) -> None:
        self.actual.topic_arn = alerts.create_topic(self.aws.sns, self.prefix, action.name)
        self.save()
        progress(f"  created SNS topic {action.name}")

    def _create_sns_subscription(self, action: Action) -> None:
        alerts.subscribe(self.aws.sns, self._topic_arn(), action.name)
        progress(f"  subscribed {action.name}: AWS sends a confirmation link to that address")

    def _create_alarm(self, action: Action) -> None:
        ids = {name: instance.id for name, instance in self.actual.instances.items()}
        alarm = desired_alarms(self.settings, self.aws.region, self._topic_arn(), ids)[action.name]
        alerts.put_alarm(self.aws.cloudwatch, self.prefix, action.name, alarm)
        progress(f"  {'created' if action.op == '+' else 'updated'} alarm {action.name}")

    def _topic_arn(self) -> str:
        assert self.actual.topic_arn, "the plan creates the topic before the subscription and alarms"
        return self.actual.topic_arn

    def _create_load_balancer(self, action: Action) -> None:
        subnets = self.subnets[instance_type_of(self.settings, "kong")]
        self.actual.lb.balancer = lb.create_balancer(self.aws.elbv2, self.settings, [s["SubnetId"] for s in subnets])
        self.save()
        zones = ", ".join(sorted(s["AvailabilityZone"] for s in subnets))
        progress(f"  created load balancer {action.name} ({self.actual.lb.balancer.dns_name}, zones {zones})")

    def _create_target_group(self, action: Action) -> None:
        self.actual.lb.groups[action.name] = lb.create_group(self.aws.elbv2, self.settings, self.actual.vpc_id)
        self.save()
        progress(f"  created target group {action.name}")

    def _create_listener(self, action: Action) -> None:
        balancer = self._balancer()
        lb.create_listener(self.aws.elbv2, self.settings, balancer, self._group())
        self.save()
        progress(f"  created listener {action.name} {action.detail}")

    def _create_target(self, action: Action) -> None:
        instance = self.actual.instances[action.name]
        group = self.actual.lb.groups[action.data["group"]]
        lb.register(self.aws.elbv2, group.arn, [instance.id])
        group.targets[instance.id] = "initial"
        progress(f"  registered {action.name} ({instance.id}) in {group.name}")

    def _balancer(self) -> Balancer:
        assert self.actual.lb.balancer, "the plan creates the load balancer before its listener"
        return self.actual.lb.balancer

    def _group(self) -> TargetGroup:
        return self.actual.lb.groups[group_name(self.settings)]

    # "~" ------------------------------------------------------------------------------------------
    def _change_load_balancer(self, action: Action) -> None:
        lb.set_cross_zone(self.aws.elbv2, self._balancer().arn)
        self._balancer().cross_zone = True
        progress(f"  turned cross-zone load balancing on for {action.name}")

    def _change_target_group(self, action: Action) -> None:
        lb.update_group(self.aws.elbv2, self.settings, self.actual.lb.groups[action.name])
        progress(f"  updated target group {action.name}: {action.detail}")

    def _change_listener(self, action: Action) -> None:
        lb.point_listener(self.aws.elbv2, self._balancer(), action.data["arn"], self._group())
        self.save()
        progress(f"  pointed listener {action.name} {action.detail}")

    # "~" ------------------------------------------------------------------------------------------
    def _change_instance(self, action: Action) -> None:
        self.aws.ec2.start_instances(InstanceIds=[action.data["id"]])
        self.to_wait.add(action.data["id"])
        progress(f"  starting {action.name} ({action.data['id']})")

    _change_alarm = _create_alarm

    # "-" ------------------------------------------------------------------------------------------
    def _destroy_ingress(self, action: Action) -> None:
        groups.revoke(self.aws.ec2, self.actual.groups[action.name], [action.data["id"]])
        self.actual.rules[action.name].pop(action.data["rule"], None)
        progress(f"  revoked {action.name} {action.detail}")

    def _terminate(self, actions: list[Action]) -> None:
        ids = [action.data["id"] for action in actions]
        self.aws.ec2.terminate_instances(InstanceIds=ids)
        self.terminated += ids
        for action in actions:
            self.state.hosts.pop(action.name, None)
        for instance_id in ids:
            known_hosts.forget(instance_id)
        self.save()
        if self.together:
            progress(f"  terminating {', '.join(action.name for action in actions)}")
        else:
            progress(f"  terminating {actions[0].name} ({ids[0]})")

    def _deregister(self, actions: list[Action]) -> None:
        """The nodes leave their target group together, then the drain is waited for (their requests
        finish) before anything terminates them."""
        by_group: dict[str, dict[str, str]] = {}
        for action in actions:
            by_group.setdefault(action.data["group"], {})[action.data["id"]] = action.name
        for name, leaving in by_group.items():
            group = self.actual.lb.groups[name]
            lb.deregister(self.aws.elbv2, group.arn, list(leaving))
            progress(f"  deregistered {', '.join(leaving.values())} from {name}")
            delay = self.settings.gateway.deregistration_delay
            lb.wait_drained(self.aws.elbv2, group.arn, leaving, progress, timeout=delay + lb.HEALTHY_TIMEOUT)
            for instance_id in leaving:
                group.targets.pop(instance_id, None)
            progress(f"  drained {', '.join(leaving.values())}")

    def _destroy_listener(self, action: Action) -> None:
        self.aws.elbv2.delete_listener(ListenerArn=action.data["arn"])
        self._balancer().listeners.pop(action.data["arn"], None)
        progress(f"  deleted listener of {action.name}")

    def _destroy_load_balancer(self, action: Action) -> None:
        self.aws.elbv2.delete_load_balancer(LoadBalancerArn=self._balancer().arn)
        self.actual.lb.balancer = None
        self.save()
        progress(f"  deleted load balancer {action.name}")

    def _destroy_target_group(self, action: Action) -> None:
        lb.delete_group(self.aws.elbv2, self.actual.lb.groups[action.name].arn, progress)
        self.actual.lb.groups.pop(action.name)
        self.save()
        progress(f"  deleted target group {action.name}")

    def _delete_alarms(self, actions: list[Action]) -> None:
        alerts.delete_alarms(self.aws.cloudwatch, [action.name for action in actions])
        progress(f"  deleted {len(actions)} alarms" if self.together else f"  deleted alarm {actions[0].name}")

    def _destroy_sns_subscription(self, action: Action) -> None:
        self.aws.sns.unsubscribe(SubscriptionArn=action.data["arn"])
        progress(f"  unsubscribed {action.name}")

    def _destroy_sns_topic(self, action: Action) -> None:
        self.aws.sns.delete_topic(TopicArn=action.data["arn"])
        self.actual.topic_arn = None
        self.save()
        progress(f"  deleted SNS topic {action.name}")

    def _delete_groups(self, actions: list[Action]) -> None:
        doomed = {action.name: self.actual.groups[action.name] for action in actions}
        groups.delete_groups(self.aws.ec2, doomed, self.actual.rules, progress)
        for name in doomed:
            self.actual.groups.pop(name, None)
        self.save()

    def _destroy_key_pair(self, action: Action) -> None:
        self.aws.ec2.delete_key_pair(KeyName=action.name)
        self.actual.key_pair_exists = False
        progress(f"  deleted key pair {action.name} (the private key stays in .deploy/ssh)")

    # waiting --------------------------------------------------------------------------------------
    def wait_for_terminations(self) -> None:
        if self.terminated:
            instances.wait_for_states(self.aws.ec2, self.terminated, "terminated", progress)

    def wait_until_ready(self, ssh: bool) -> None:
        ec2 = self.aws.ec2
        if self.to_wait:
            running = instances.wait_for_states(ec2, sorted(self.to_wait), "running", progress)
            for name, host in self.state.hosts.items():
                found = running.get(host.extra["instance_id"])
                if found:
                    self.state.hosts[name] = aws_host(self.settings, found, host.role, host.key)
                    self.actual.instances[name] = found
            self.save()
        if not ssh:
            left = console.unpinned(self.state)
            if left:
                progress(
                    f"  --no-wait: the SSH host keys of {', '.join(left)} are not pinned yet; "
                    "run python provision.py again before deploying (it reads them from the consoles)"
                )
            return
        console.pin_from_consoles(ec2, self.state, self.actual.instances, progress)  # before anything connects
        hosts = {name: (host.public_ip, host.ssh_port) for name, host in self.state.hosts.items() if host.public_ip}
        instances.wait_for_ssh(hosts, progress, SSH_TIMEOUT)
