"""Every AWS failure users hit: one line with the operation, AWS's code and message and a hint;
exit status 1; no traceback; what was created before is in the state and a re-run finishes."""

import pytest
from botocore.stub import Stubber

from stack.aws.clients import Clients

EXPIRED_HINT = "in Learner Lab press Start Lab, open AWS Details"


def one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_no_credentials_as_a_user_sees_it(aws):
    result = aws.cli("plan", without=("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))
    assert result.returncode == 1
    assert one_line(result.stderr) == (
        "error: AWS credentials not found (Unable to locate credentials) (hint: run aws configure, or write "
        "aws_access_key_id, aws_secret_access_key and aws_session_token under [default] in ~/.aws/credentials; "
        "Learner Lab: AWS Details > AWS CLI)"
    )


def test_unknown_region(aws):
    aws.configure(region="zz-nowhere-1")
    code, out, err = aws.run("plan")
    assert code == 1
    line = one_line(err)
    assert line.startswith("error: region 'zz-nowhere-1' is not an EC2 region: set region in config.yml to one of ")
    assert "us-east-1" in line and line.endswith("(Learner Lab: us-east-1 or us-west-2)")


def test_unreachable_endpoint(aws, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    code, out, err = aws.run("plan")
    assert code == 1
    assert one_line(err).startswith("error: cannot reach AWS: Could not connect to the endpoint URL")


def test_an_endpoint_answering_html_is_one_line(aws, monkeypatch):
    """A proxy or captive portal answers with a web page: botocore's parser error is no BotoCoreError."""
    import http.server
    import threading

    class Portal(http.server.BaseHTTPRequestHandler):  # answers POST with its HTML 501 page
        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Portal)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_address[1]}")
        code, out, err = aws.run("plan")
    finally:
        server.shutdown()
        server.server_close()
    assert code == 1
    assert one_line(err) == (
        "error: the AWS endpoint answered something that is not an AWS response (hint: check "
        "the network, a proxy, and AWS_ENDPOINT_URL if set)"
    )


def test_unknown_instance_type_is_refused_at_plan_time(aws):
    aws.configure(instance_type="t9.bogus")
    aws.recorder.start()
    code, out, err = aws.run("--no-wait")
    assert code == 1
    assert one_line(err) == (
        "error: instance type t9.bogus is not offered in this region: check instance_type / "
        "kong_instance_type (e.g. t2.nano, t3.micro, t2.small) and region"
    )
    assert aws.recorder.mutating() == []


def test_expired_session_with_a_stubbed_sts(aws, monkeypatch):
    """botocore's Stubber answers the credentials preflight as AWS does for an old Learner Lab token."""
    original = Clients.make
    stubbers = []

    def make(clients, service):
        if service == "sts" and "sts" not in clients._made:
            client = clients._session.client("sts", config=clients.config)  # its own: not the shared one
            stubber = Stubber(client)
            stubber.add_client_error(
                "get_caller_identity",
                service_error_code="ExpiredToken",
                service_message="The security token included in the request is expired",
                http_status_code=400,
            )
            stubber.activate()
            stubbers.append(stubber)
            clients._made["sts"] = client
        return original(clients, service)

    monkeypatch.setattr(Clients, "make", make)
    code, out, err = aws.run("--no-wait")
    assert code == 1 and len(stubbers) == 1
    stubbers[0].assert_no_pending_responses()
    assert one_line(err) == (
        "error: GetCallerIdentity failed: ExpiredToken: The security token included in the request is expired "
        "(hint: re-new the credentials: in Learner Lab press Start Lab, open AWS Details and copy the new "
        "aws_access_key_id, aws_secret_access_key and aws_session_token into ~/.aws/credentials)"
    )


@pytest.mark.parametrize(
    "code, message, hint",
    [
        ("AuthFailure", "AWS was not able to validate the provided access credentials", EXPIRED_HINT),
        ("RequestExpired", "Request has expired.", "fix this machine's clock"),
        ("InvalidClientTokenId", "The security token included in the request is invalid.", EXPIRED_HINT),
    ],
)
def test_expired_or_invalid_credentials_on_ec2(aws, monkeypatch, code, message, hint):
    aws.inject(monkeypatch, "DescribeVpcs", code, message)
    status, out, err = aws.run("--no-wait")
    line = one_line(err)
    assert status == 1
    assert line.startswith(f"error: DescribeVpcs failed: {code}: {message.rstrip('.')} (hint: ")
    assert hint in line


def test_unauthorized_operation_after_the_groups_were_made_then_rerun_finishes(aws, monkeypatch):
    aws.inject(
        monkeypatch, "RunInstances", "UnauthorizedOperation", "You are not authorized to perform this operation."
    )
    code, out, err = aws.run("--no-wait")
    assert code == 1
    assert one_line(err) == (
        "error: RunInstances failed: UnauthorizedOperation: You are not authorized to perform this operation "
        "(hint: this account may not do that (Learner Lab allows nano..large types, us-east-1/us-west-2, no IAM "
        "roles): use an allowed value or ask your admin)"
    )
    state = aws.state()
    assert set(state["aws"]["groups"]) == {"des-db-sg", "des-backends-sg", "des-kong-sg"}
    assert state["hosts"] == {}


def test_vcpu_limit_midway_leaves_a_state_and_a_rerun_finishes(aws, monkeypatch):
    injected = aws.inject(
        monkeypatch,
        "RunInstances",
        "VcpuLimitExceeded",
        "You have requested more vCPU capacity than your current vCPU limit of 32 allows",
        skip=2,
    )
    code, out, err = aws.run("--no-wait")
    assert code == 1
    line = one_line(err)
    assert line.startswith("error: RunInstances failed: VcpuLimitExceeded: You have requested more vCPU")
    assert "use a smaller instance_type, fewer backends, or destroy other instances" in line
    assert set(aws.state()["hosts"]) == {"des-db", "des-backend-a"}  # recorded as they were made
    assert set(aws.instances()) == {"des-db", "des-backend-a"}

    injected["off"] = True  # the limit was raised
    aws.recorder.start()
    code, out, err = aws.run("--no-wait")
    assert code == 0, err
    assert aws.recorder.mutating() == ["RunInstances", "RunInstances"]
    assert set(aws.instances()) == {"des-db", "des-backend-a", "des-backend-b", "des-kong"}


def test_insufficient_capacity_in_one_zone_tries_the_next(aws, monkeypatch):
    aws.inject(
        monkeypatch,
        "RunInstances",
        "InsufficientInstanceCapacity",
        "We currently do not have sufficient t2.nano capacity in the Availability Zone you requested",
        times=1,
    )
    code, out, err = aws.run("--no-wait")
    assert code == 0, err
    assert "no t2.nano capacity in us-east-1a; trying the next zone" in out
    assert aws.instances()["des-db"]["Placement"]["AvailabilityZone"] == "us-east-1b"


def test_insufficient_capacity_everywhere_is_one_line(aws, monkeypatch):
    aws.inject(
        monkeypatch,
        "RunInstances",
        "InsufficientInstanceCapacity",
        "We currently do not have sufficient t2.nano capacity in the Availability Zone you requested",
    )
    code, out, err = aws.run("--no-wait")
    assert code == 1
    line = one_line(err)
    assert line.startswith("error: RunInstances failed: InsufficientInstanceCapacity: We currently do not have")
    assert line.endswith(
        "(hint: AWS has no capacity for this type in any offered zone right now: re-run later "
        "or choose another instance_type)"
    )


def test_invalid_parameter_combination(aws, monkeypatch):
    aws.inject(
        monkeypatch,
        "RunInstances",
        "InvalidParameterCombination",
        "The specified instance type is not supported by this AMI",
    )
    code, out, err = aws.run("--no-wait")
    assert code == 1
    assert one_line(err).endswith(
        "(hint: this instance type does not fit the image or options: choose another instance_type)"
    )


def test_no_noble_image_asks_for_ami_id(aws, monkeypatch):
    monkeypatch.setattr("stack.aws.ami.NOBLE_NAMES", ["ubuntu/images/hvm-ssd-gp3/ubuntu-plucky-*"])
    code, out, err = aws.run("--dry")
    assert code == 1
    assert one_line(err) == (
        "error: no Canonical Ubuntu 24.04 amd64 image found in this region: set ami_id in "
        "config.yml to an Ubuntu 24.04 AMI id you may use (EC2 console > AMI Catalog)"
    )
