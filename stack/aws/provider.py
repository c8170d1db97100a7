"""provision.py --provider aws: plan, apply, destroy. The steps live in the sibling modules:
discover (read) -> plan (pure) -> print -> apply the "+"/"~" actions -> confirm -> the "-" actions
-> wait -> state -> outputs. The state file is written after every resource created, so a failure
half-way leaves what exists recorded, and a re-run (which finds everything by tags) finishes the job.
"""

import sys

from stack.aws import alerts, groups, instances, keys
from stack.aws.ami import resolve_image
from stack.aws.backup import check_backup_path, pull_backup
from stack.aws.clients import Clients
from stack.aws.discover import discover, host_record
from stack.aws.errors import aws_errors
from stack.aws.network import subnets_for
from stack.aws.plan import (
    Actual, Action, desired_alarms, instance_type_of, key_pair_name, plan_apply, plan_destroy, render, topic_name,
)
from stack.aws.rules import group_names, ssh_warning
from stack.confirm import confirm
from stack.dump import default_backup_path
from stack.errors import UserError
from stack.options import Options
from stack.outputs import render_outputs
from stack.settings import Settings, host_names
from stack.state import load_state, new_state, remove_state, save_state


SSH_TIMEOUT = 600  # seconds; a t2.nano's first boot with cloud-init takes 1-3 minutes


def progress(line: str) -> None:
    print(line, flush=True)


def warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr, flush=True)


def apply(settings: Settings, options: Options) -> int:
    with aws_errors():
        return _apply(settings, options)


def destroy(settings: Settings, options: Options) -> int:
    with aws_errors():
        return _destroy(settings, options)


def backup(settings: Settings, path: str | None) -> int:
    """`provision.py backup [PATH]`: a fresh pg_dump of the database host, read-only on AWS."""
    with aws_errors():
        _check_recorded_project(settings)
        aws = _connect(settings)
        found, _ = instances.find_instances(aws.ec2, settings.project_prefix)
        database = found.get(f"{settings.project_prefix}-db")
        if database is None or database.state in ("terminated", "shutting-down"):
            raise UserError(f"no database host {settings.project_prefix}-db in this account and region: "
                            "run python provision.py first")
        target = path or str(default_backup_path(settings.db_name))
        pull_backup(settings, database, target, progress, if_failed="", label="backup")
        progress(f"restore into an empty database: pg_restore --no-owner --dbname=<empty database> {target}")
    return 0


def _connect(settings: Settings) -> Clients:
    aws = Clients(settings.region)
    account = aws.sts.get_caller_identity()["Account"]  # cheap check of the credentials first
    progress(f"AWS account {account}, region {settings.region}, project {settings.project_prefix}")
    return aws


# --- apply ----------------------------------------------------------------------------------------


def _check_recorded_project(settings: Settings) -> dict | None:
    """A state of another project_prefix would be overwritten, and its hosts forgotten (they carry
    the old Project tag): refuse instead. Returns the recorded state."""
    recorded = load_state()
    if recorded and recorded.get("hosts") and recorded.get("prefix") != settings.project_prefix:
        raise UserError(f"the state holds the hosts of project {recorded.get('prefix')!r} but project_prefix is "
                        f"{settings.project_prefix!r}: set it back and run destroy first, or set DEPLOY_HOME "
                        f"to another folder")
    return recorded


def _alerts_may_exist(settings: Settings, recorded: dict | None) -> bool:
    """Look at SNS and CloudWatch only when alerts are wanted, recorded, or the state is gone."""
    if settings.manager_email or recorded is None or recorded.get("provider") != "aws":
        return True
    section = recorded.get("aws") or {}
    return bool(section.get("topic_arn") or section.get("rebuilt_from_tags"))


def _apply(settings: Settings, options: Options) -> int:
    recorded = _check_recorded_project(settings)
    aws = _connect(settings)
    actual = discover(aws, settings, alerts=_alerts_may_exist(settings, recorded))
    for line in [ssh_warning(settings)] + keys.check_key(aws.ec2, settings, actual.key_pair_exists):
        if line:
            warn(line)
    for name, (role, _key) in host_names(settings).items():
        found = actual.instances.get(name)
        if found and found.instance_type != instance_type_of(settings, role):
            warn(f"{name} runs {found.instance_type}, the settings say {instance_type_of(settings, role)}: "
                 f"hosts are not replaced in place; destroy --only {name} and re-run to replace it")

    actions = plan_apply(settings, actual, aws.region)
    image_id, subnets = "", {}
    launches = [a for a in actions if a.kind == "instance" and a.op == "+"]
    if launches:
        # Read-only checks that can refuse the plan itself (also under --dry): image and zones.
        image_id, image_name = resolve_image(aws.ec2, settings.ami_id)
        subnets = subnets_for(aws.ec2, actual.vpc_id, sorted({a.data["type"] for a in launches}))
        actions = plan_apply(settings, actual, aws.region, image=f"{image_id} {image_name}")
    progress(render(actions))
    if options.dry:
        progress("--dry: nothing was changed.")
        return 0

    state = _fresh_state(settings, aws, actual)
    save_state(state)
    run = _Run(aws, settings, actual, state, image_id, subnets)
    run.do_all([a for a in actions if not a.destructive])
    run.wait_until_ready(options.wait)  # the safe part is complete (and recorded) before any question
    destructive = [a for a in actions if a.destructive]
    if destructive:
        if confirm(_what(destructive), options.yes):
            run.do_all(destructive)
            run.wait_for_terminations()
        else:
            progress("Destructive changes were not applied.")
    progress("Apply complete.")
    progress("")
    progress(render_outputs(state, settings))
    return 0


def _fresh_state(settings: Settings, aws: Clients, actual: Actual) -> dict:
    """The state as AWS has it now: the desired hosts that exist, the groups, the key."""
    state = new_state("aws", settings.project_prefix, aws.region)
    for name, (role, key) in host_names(settings).items():
        if name in actual.instances:
            state["hosts"][name] = host_record(settings, actual.instances[name], role, key)
    state["aws"] = {"region": aws.region, "vpc_id": actual.vpc_id, "groups": dict(actual.groups),
                    "key_name": key_pair_name(settings), "topic_arn": actual.topic_arn}
    return state


def _what(actions: list[Action]) -> str:
    """'terminate 2 instances (des-backend-c, des-backend-d), revoke 1 rule' for the prompt."""
    verbs = {"instance": "terminate", "ingress": "revoke", "alarm": "delete", "sns_topic": "delete",
             "sns_subscription": "unsubscribe", "security_group": "delete", "key_pair": "delete"}
    nouns = {"instance": "instance", "ingress": "rule", "alarm": "alarm", "sns_topic": "topic",
             "sns_subscription": "subscription", "security_group": "security group", "key_pair": "key pair"}
    parts = []
    for kind in verbs:
        chosen = [a for a in actions if a.kind == kind]
        if chosen:
            names = ", ".join(sorted({a.name for a in chosen}))
            plural = "s" if len(chosen) > 1 else ""
            parts.append(f"{verbs[kind]} {len(chosen)} {nouns[kind]}{plural} ({names})")
    return ", ".join(parts)


class _Run:
    """Carries out plan actions, recording each created resource in the state at once."""

    def __init__(self, aws: Clients, settings: Settings, actual: Actual, state: dict, image_id: str,
                 subnets: dict[str, list[dict]]):
        self.aws, self.settings, self.actual, self.state, self.image_id = aws, settings, actual, state, image_id
        self.prefix = settings.project_prefix
        self.subnets = subnets
        self.to_wait: set[str] = {i.id for n, i in actual.instances.items()
                                  if n in state["hosts"] and i.state != "running"}
        self.terminated: list[str] = []

    def save(self) -> None:
        self.state["aws"]["groups"] = dict(self.actual.groups)
        self.state["aws"]["topic_arn"] = self.actual.topic_arn
        save_state(self.state)

    def do_all(self, actions: list[Action]) -> None:
        """In plan order; the new rules of one group go to AWS in one call."""
        rules: dict[str, list[Action]] = {}
        for action in actions:
            if action.kind == "ingress" and action.op == "+":
                rules.setdefault(action.name, []).append(action)
                continue
            self._authorize(rules)
            getattr(self, f"_{action.op_name}_{action.kind}")(action)
        self._authorize(rules)

    # "+" ------------------------------------------------------------------------------------------
    def _create_key_pair(self, action: Action) -> None:
        path = keys.create_key_pair(self.aws.ec2, self.settings)
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
        instance = instances.launch(self.aws.ec2, self.prefix, action.name, role, key, kind, self.image_id,
                                    key_pair_name(self.settings), group_id, self.subnets[kind], progress)
        self.actual.instances[action.name] = instance
        self.state["hosts"][action.name] = host_record(self.settings, instance, role, key)
        self.save()
        self.to_wait.add(instance.id)
        progress(f"  launched {action.name} ({instance.id}, {kind}, {instance.zone})")

    def _create_sns_topic(self, action: Action) -> None:
        self.actual.topic_arn = alerts.create_topic(self.aws.sns, self.prefix, action.name)
        self.save()
        progress(f"  created SNS topic {action.name}")

    def _create_sns_subscription(self, action: Action) -> None:
        alerts.subscribe(self.aws.sns, self.actual.topic_arn, action.name)
        progress(f"  subscribed {action.name}: AWS sends a confirmation link to that address")

    def _create_alarm(self, action: Action) -> None:
        ids = {name: instance.id for name, instance in self.actual.instances.items()}
        alarm = desired_alarms(self.settings, self.aws.region, self.actual.topic_arn, ids)[action.name]
        alerts.put_alarm(self.aws.cloudwatch, self.prefix, action.name, alarm)
        progress(f"  {'created' if action.op == '+' else 'updated'} alarm {action.name}")

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

    def _destroy_instance(self, action: Action) -> None:
        self.aws.ec2.terminate_instances(InstanceIds=[action.data["id"]])
        self.terminated.append(action.data["id"])
        self.state["hosts"].pop(action.name, None)
        self.save()
        progress(f"  terminating {action.name} ({action.data['id']})")

    def _destroy_alarm(self, action: Action) -> None:
        alerts.delete_alarms(self.aws.cloudwatch, [action.name])
        progress(f"  deleted alarm {action.name}")

    def _destroy_sns_subscription(self, action: Action) -> None:
        self.aws.sns.unsubscribe(SubscriptionArn=action.data["arn"])
        progress(f"  unsubscribed {action.name}")

    def _destroy_sns_topic(self, action: Action) -> None:
        self.aws.sns.delete_topic(TopicArn=action.data["arn"])
        self.actual.topic_arn = None
        self.save()
        progress(f"  deleted SNS topic {action.name}")

    # waiting --------------------------------------------------------------------------------------
    def wait_for_terminations(self) -> None:
        if self.terminated:
            instances.wait_for_states(self.aws.ec2, self.terminated, "terminated", progress)

    def wait_until_ready(self, ssh: bool) -> None:
        ec2 = self.aws.ec2
        if self.to_wait:
            running = instances.wait_for_states(ec2, sorted(self.to_wait), "running", progress)
            for name, host in self.state["hosts"].items():
                found = running.get(host["instance_id"])
                if found:
                    role, key = host["role"], host["key"]
                    self.state["hosts"][name] = host_record(self.settings, found, role, key)
                    self.actual.instances[name] = found
            self.save()
        if ssh:
            hosts = {name: (host["public_ip"], host["ssh_port"])
                     for name, host in self.state["hosts"].items() if host["public_ip"]}
            instances.wait_for_ssh(hosts, progress, SSH_TIMEOUT)


# --- destroy --------------------------------------------------------------------------------------


def _destroy(settings: Settings, options: Options) -> int:
    _check_recorded_project(settings)
    aws = _connect(settings)
    actual = discover(aws, settings)
    prefix = settings.project_prefix
    unknown = sorted(set(options.only) - set(actual.instances))
    if unknown:
        known = ", ".join(sorted(actual.instances)) or "none"
        raise UserError(f"--only {' '.join(unknown)}: no such host of project {prefix} (its hosts: {known})")
    actions = plan_destroy(settings, actual, options.only)
    database = f"{prefix}-db"
    db_goes = any(a.kind == "instance" and a.name == database for a in actions)
    if options.backup:
        if not db_goes:
            raise UserError(f"--backup dumps the database before {database} is terminated, "
                            f"but {database} is not being destroyed: drop --backup")
        check_backup_path(options.backup)
    progress(render(actions))
    if db_goes and not options.backup:
        warn(f"{database} holds the database: add --backup PATH to pull a pg_dump to this machine first")
    if options.dry:
        progress("--dry: nothing was changed.")
        return 0
    if not actions:
        if not options.only:
            remove_state()
        progress("Nothing to destroy.")
        return 0
    if not confirm(_what(actions), options.yes):
        progress("Destroy cancelled.")
        return 1
    if options.backup:
        pull_backup(settings, actual.instances[database], options.backup, progress)

    state = load_state() or new_state("aws", prefix, aws.region)
    ec2 = aws.ec2
    doomed = [a for a in actions if a.kind == "instance"]
    if doomed:
        ec2.terminate_instances(InstanceIds=[a.data["id"] for a in doomed])
        for action in doomed:
            state["hosts"].pop(action.name, None)
        save_state(state)
        progress(f"  terminating {', '.join(a.name for a in doomed)}")
        instances.wait_for_states(ec2, [a.data["id"] for a in doomed], "terminated", progress)
    alarm_names = [a.name for a in actions if a.kind == "alarm"]
    if alarm_names:
        alerts.delete_alarms(aws.cloudwatch, alarm_names)
        progress(f"  deleted {len(alarm_names)} alarms")
    for action in actions:
        if action.kind == "sns_topic":
            aws.sns.delete_topic(TopicArn=action.data["arn"])
            progress(f"  deleted SNS topic {topic_name(settings)}")
    doomed_groups = {a.name: actual.groups[a.name] for a in actions if a.kind == "security_group"}
    if doomed_groups:
        groups.delete_groups(ec2, doomed_groups, actual.rules, progress)
    if any(a.kind == "key_pair" for a in actions):
        ec2.delete_key_pair(KeyName=key_pair_name(settings))
        progress(f"  deleted key pair {key_pair_name(settings)} (the private key stays in .deploy/ssh)")
    if options.only:
        save_state(state)
    else:
        remove_state()
    progress("Destroy complete.")
    return 0
