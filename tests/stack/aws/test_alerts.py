"""Alerts to manager_email: SNS topic + e-mail subscription + a status-check alarm per instance."""


def alarms(aws) -> dict[str, dict]:
    return {a["AlarmName"]: a for a in aws.client("cloudwatch").describe_alarms()["MetricAlarms"]}


def test_topic_subscription_and_alarms_per_instance(aws):
    aws.configure(manager_email="ops@example.com", kong_instance_type="m5d.large")
    code, out, err = aws.run("--no-wait")
    assert code == 0, err
    sns = aws.client("sns")
    topics = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    assert len(topics) == 1 and topics[0].endswith(":des-alerts")
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topics[0])["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [("email", "ops@example.com")]

    ids = {name: raw["InstanceId"] for name, raw in aws.instances().items()}
    found = alarms(aws)
    # t2 hosts get the recover action; m5d (instance store) cannot be recovered
    assert set(found) == {f"{name}-status-check" for name in ids} | {
        "des-db-auto-recover",
        "des-backend-a-auto-recover",
        "des-backend-b-auto-recover",
    }
    for name, instance_id in ids.items():
        check = found[f"{name}-status-check"]
        assert check["MetricName"] == "StatusCheckFailed" and check["Namespace"] == "AWS/EC2"
        assert check["Dimensions"] == [{"Name": "InstanceId", "Value": instance_id}]
        assert check["AlarmActions"] == [topics[0]]
    recover = found["des-db-auto-recover"]
    assert recover["MetricName"] == "StatusCheckFailed_System"
    assert sorted(recover["AlarmActions"]) == sorted([topics[0], "arn:aws:automate:us-east-1:ec2:recover"])


def test_alerts_rerun_is_quiet_and_alarms_converge(aws):
    aws.configure(manager_email="ops@example.com")
    assert aws.run("--no-wait")[0] == 0
    aws.recorder.start()
    assert aws.run("--no-wait")[0] == 0
    assert aws.recorder.mutating() == []

    # an alarm changed by hand is put back in place ("~")
    aws.client("cloudwatch").put_metric_alarm(
        AlarmName="des-db-status-check",
        Namespace="AWS/EC2",
        MetricName="StatusCheckFailed",
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=2,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        Dimensions=[{"Name": "InstanceId", "Value": "i-0123456789abcdef0"}],
        AlarmActions=[],
    )
    aws.recorder.start()
    code, out, err = aws.run("--no-wait")
    assert code == 0, err
    assert "~ alarm des-db-status-check" in " ".join(out.split())
    assert aws.recorder.mutating() == ["PutMetricAlarm"]
    assert alarms(aws)["des-db-status-check"]["Dimensions"][0]["Value"] == aws.instances()["des-db"]["InstanceId"]

    # a replaced host gets its alarms pointed at the new instance
    assert aws.run("destroy", "--only", "des-kong", "--yes")[0] == 0
    assert "des-kong-status-check" not in alarms(aws)
    aws.recorder.start()
    code, out, err = aws.run("--no-wait")
    assert code == 0, err
    assert sorted(aws.recorder.mutating()) == ["PutMetricAlarm", "PutMetricAlarm", "RunInstances"]
    kong = aws.instances()["des-kong"]["InstanceId"]
    assert alarms(aws)["des-kong-status-check"]["Dimensions"] == [{"Name": "InstanceId", "Value": kong}]

    # unsetting manager_email removes the alerts, after confirmation
    aws.configure()
    code, out, err = aws.run("--no-wait")
    assert code == 1 and "refusing to delete 8 alarms" in err
    code, out, err = aws.run("--no-wait", "--yes")
    assert code == 0, err
    assert alarms(aws) == {} and aws.client("sns").list_topics()["Topics"] == []
