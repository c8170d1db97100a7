"""Carrying out plan actions (see plan.py) for apply and destroy alike: one method per kind of
action, each recording what it created or removed in the state at once, so a failure half-way
leaves what exists recorded and a re-run (which finds everything by tags) finishes the job."""

import sys
from itertools import groupby

from stack import known_hosts
from stack.aws import alerts, console, groups, instances
from stack.aws.clients import Clients
from stack.aws.discover import aws_host
from stack.aws.keys import create_key_pair
from stack.aws.plan import Action, Actual, desired_alarms, key_pair_name
from stack.aws.rds_run import RdsSteps
from stack.aws.rules import group_names
from stack.settings import Settings
from stack.state import State, save_state

SSH_TIMEOUT = 600  # seconds; a t2.nano's first boot with cloud-init takes 1-3 minutes
# Removed by one call per kind when destroying everything (`together`), one call per resource
# when apply removes what the settings no longer want. Groups always go together: delete_groups
# first drops the rules by which they name each other.
MANY_AT_ONCE = ("instance", "alarm", "security_group")
VERBS = {
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
                }[kind]
                many = self.together or kind == "security_group"
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
            self.subnets[kind],
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
