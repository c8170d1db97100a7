"""destroy goes through apply's Run, each kind at once: its calls and progress lines stay destroy's."""


def test_destroy_removes_each_kind_in_one_call_with_one_line(aws):
    aws.configure(manager_email="ops@example.com")
    assert aws.run("--no-wait")[0] == 0

    aws.recorder.start()
    code, out, err = aws.run("destroy", "--yes")
    assert code == 0, err
    calls = aws.recorder.mutating()
    assert calls.count("TerminateInstances") == 1 and calls.count("DeleteAlarms") == 1
    done = out.split("Plan: 0 to add, 0 to change, 17 to destroy.\n")[1].splitlines()
    assert [line for line in done if "waiting for" not in line] == [
        "  terminating des-backend-a, des-backend-b, des-db, des-kong",
        "  deleted 8 alarms",
        "  deleted SNS topic des-alerts",
        "  deleted security group des-db-sg",
        "  deleted security group des-backends-sg",
        "  deleted security group des-kong-sg",
        "  deleted key pair des-key (the private key stays in .deploy/ssh)",
        "Destroy complete.",
    ]


def test_apply_removes_one_resource_per_call_naming_each(aws):
    aws.configure(manager_email="ops@example.com", backends=["a", "b", "c"])
    assert aws.run("--no-wait")[0] == 0
    backend_c = aws.instances()["des-backend-c"]["InstanceId"]

    aws.configure(manager_email="ops@example.com")
    code, out, err = aws.run("--no-wait", "--yes")
    assert code == 0, err
    assert f"  terminating des-backend-c ({backend_c})" in out.splitlines()
    assert "  deleted alarm des-backend-c-status-check" in out.splitlines()
