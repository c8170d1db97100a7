"""Security-group rules as data: least privilege from the settings, exact tuples."""

from stack.aws.rules import Rule, desired_rules, permission_of, rule_of, ssh_warning, tcp
from stack.settings import Settings, defaults


def settings(**changes) -> Settings:
    values = defaults().as_dict()
    values.update(changes)
    return Settings(**values)


def test_defaults_open_only_what_each_role_needs():
    assert {group: set(rules) for group, rules in desired_rules(defaults()).items()} == {
        "des-kong-sg": {tcp(8000, "0.0.0.0/0"), tcp(22, "0.0.0.0/0")},
        "des-backends-sg": {tcp(8080, "sg:des-kong-sg"), tcp(22, "0.0.0.0/0")},
        "des-db-sg": {tcp(5432, "sg:des-backends-sg"), tcp(22, "0.0.0.0/0")},
    }


def test_admin_networks_restrict_ssh_and_open_kong_admin():
    rules = desired_rules(settings(admin_cidr="203.0.113.7/32", kong_admin_cidr="198.51.100.0/24", app_port=9000))
    assert set(rules["des-kong-sg"]) == {
        tcp(8000, "0.0.0.0/0"),
        tcp(22, "203.0.113.7/32"),
        tcp(8001, "198.51.100.0/24"),
    }
    assert set(rules["des-backends-sg"]) == {tcp(9000, "sg:des-kong-sg"), tcp(22, "203.0.113.7/32")}
    assert rules["des-kong-sg"][tcp(8001, "198.51.100.0/24")] == "Kong admin API from kong_admin_cidr"


def test_ssh_warning_only_without_admin_cidr():
    assert ssh_warning(settings(admin_cidr="203.0.113.7/32")) is None
    assert ssh_warning(defaults()) == (
        "SSH (22) is open to 0.0.0.0/0 because admin_cidr is unset: set admin_cidr: <your IP>/32 in config.yml "
        "(your IP: curl -s https://checkip.amazonaws.com) and re-run to restrict it"
    )


def test_rules_read_back_from_aws():
    names = {"sg-1": "des-kong-sg"}
    assert rule_of(
        {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "ReferencedGroupInfo": {"GroupId": "sg-1"}}, names
    ) == tcp(8080, "sg:des-kong-sg")
    assert rule_of(
        {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 9, "ReferencedGroupInfo": {"GroupId": "sg-9"}}, names
    ) == Rule("tcp", 1, 9, "sg:sg-9")
    assert rule_of({"IpProtocol": "-1", "FromPort": -1, "ToPort": -1, "CidrIpv6": "::/0"}, names) == Rule(
        "-1", None, None, "::/0"
    )
    assert Rule("-1", None, None, "::/0").describe() == "all traffic from ::/0"
    assert Rule("tcp", 1, 9, "sg:sg-9").describe() == "tcp/1-9 from sg-9"


def test_permissions_sent_to_aws():
    ids = {"des-kong-sg": "sg-1"}
    assert permission_of(tcp(8080, "sg:des-kong-sg"), ids, "Django from Kong only") == {
        "IpProtocol": "tcp",
        "FromPort": 8080,
        "ToPort": 8080,
        "UserIdGroupPairs": [{"GroupId": "sg-1", "Description": "Django from Kong only"}],
    }
    assert permission_of(tcp(22, "203.0.113.7/32"), ids) == {
        "IpProtocol": "tcp",
        "FromPort": 22,
        "ToPort": 22,
        "IpRanges": [{"CidrIp": "203.0.113.7/32"}],
    }
