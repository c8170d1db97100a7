"""Alerts to manager_email: an SNS topic with the address subscribed, and per instance a CloudWatch
alarm on its status checks (plus EC2's recover action on system checks where the type supports it).

Everything is looked up first: create_topic and put_metric_alarm are upserts, but still writes.
"""

import re

from botocore.exceptions import ClientError

from stack.aws.plan import Alarm
from stack.aws.tags import tags


def topic_arn(partition: str, region: str, account: str, name: str) -> str:
    return f"arn:{partition}:sns:{region}:{account}:{name}"


def find_topic(sns, arn: str) -> dict[str, str] | None:
    """The topic's e-mail subscriptions (see find_subscriptions), or None when it does not exist.
    Asked by its ARN: one call, where listing every topic of the account takes one or more."""
    try:
        return find_subscriptions(sns, arn)
    except ClientError as error:
        if error.response["Error"]["Code"] == "NotFound":
            return None
        raise


def find_subscriptions(sns, topic_arn: str) -> dict[str, str]:
    """Endpoint -> subscription ARN ("PendingConfirmation" until the link in the mail is followed)."""
    found = {}
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        for subscription in page["Subscriptions"]:
            if subscription["Protocol"] == "email":
                found[subscription["Endpoint"]] = subscription["SubscriptionArn"]
    return found


def find_alarms(cloudwatch, prefix: str) -> dict[str, Alarm]:
    """The project's alarms, by the names this module gives them."""
    pattern = re.compile(rf"{re.escape(prefix)}-(db|kong|backend-[a-z0-9]+)-(status-check|auto-recover)")
    found = {}
    for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=f"{prefix}-"):
        for alarm in page["MetricAlarms"]:
            if pattern.fullmatch(alarm["AlarmName"]):
                dimensions = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
                found[alarm["AlarmName"]] = Alarm(
                    alarm["MetricName"], dimensions.get("InstanceId"), tuple(sorted(alarm.get("AlarmActions", [])))
                )
    return found


def create_topic(sns, prefix: str, name: str) -> str:
    return sns.create_topic(Name=name, Tags=tags(prefix, name))["TopicArn"]


def subscribe(sns, topic_arn: str, email: str) -> None:
    sns.subscribe(TopicArn=topic_arn, Protocol="email", Endpoint=email)


def put_alarm(cloudwatch, prefix: str, name: str, alarm: Alarm) -> None:
    """Alarm after two failed one-minute checks (one blip does not page anyone)."""
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        AlarmDescription=f"{alarm.metric} on {name.rsplit('-', 2)[0]} (provision.py)",
        Namespace="AWS/EC2",
        MetricName=alarm.metric,
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=2,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        Dimensions=[{"Name": "InstanceId", "Value": alarm.instance_id}],
        AlarmActions=list(alarm.actions),
        Tags=tags(prefix, name),
    )


def delete_alarms(cloudwatch, names: list[str]) -> None:
    for start in range(0, len(names), 100):
        cloudwatch.delete_alarms(AlarmNames=names[start : start + 100])
