import re

import pytest

from stack.errors import UserError
from stack.local.network import (
    assign_addresses,
    bridge_name,
    gateway_address,
    host_nameservers,
    live_addresses,
    nat_rule,
    subnet_in_use,
)
from stack.settings import host_names, settings_from

SUBNET = "10.77.0.0/24"


def hosts(*backends):
    return host_names(settings_from({"backends": list(backends)}))


def test_bridge_name_is_derived_from_the_prefix():
    assert bridge_name("des") == "br-des"
    assert bridge_name("abcdefghijkl") == "br-abcdefghijkl"  # exactly 15 characters


def test_long_prefixes_get_a_short_distinct_bridge_name():
    assert bridge_name("a-very-long-prefix-x") == "br-a-very--751c"
    assert bridge_name("a-very-long-prefix-y") != bridge_name("a-very-long-prefix-x")
    assert len(bridge_name("a" * 20)) == 15


def test_gateway_is_the_first_address():
    assert gateway_address("10.78.0.0/24") == "10.78.0.1"


def test_fresh_addresses_db_kong_then_backends_in_order():
    assert assign_addresses(SUBNET, hosts("a", "b"), {}) == {
        "des-db": "10.77.0.10",
        "des-backend-a": "10.77.0.20",
        "des-backend-b": "10.77.0.21",
        "des-kong": "10.77.0.11",
    }


def test_recorded_addresses_are_kept_when_backends_come_and_go():
    recorded = {
        "des-db": "10.77.0.10",
        "des-backend-a": "10.77.0.20",
        "des-backend-b": "10.77.0.21",
        "des-kong": "10.77.0.11",
    }
    assert assign_addresses(SUBNET, hosts("b", "c", "d"), recorded) == {
        "des-db": "10.77.0.10",
        "des-backend-b": "10.77.0.21",
        "des-backend-c": "10.77.0.20",
        "des-backend-d": "10.77.0.22",
        "des-kong": "10.77.0.11",
    }


def test_adding_a_backend_keeps_the_others():
    recorded = assign_addresses(SUBNET, hosts("a", "b"), {})
    grown = assign_addresses(SUBNET, hosts("a", "b", "c"), recorded)
    assert grown == {**recorded, "des-backend-c": "10.77.0.22"}


def test_kong_nodes_take_11_upward_and_keep_their_addresses_when_scaled():
    three = host_names(settings_from({"backends": ["a"], "gateway": {"nodes": 3}}))
    assigned = assign_addresses(SUBNET, three, {})
    assert {name: assigned[name] for name in ("des-kong", "des-kong-2", "des-kong-3", "des-backend-a")} == {
        "des-kong": "10.77.0.11",
        "des-kong-2": "10.77.0.12",
        "des-kong-3": "10.77.0.13",
        "des-backend-a": "10.77.0.20",
    }
    two = host_names(settings_from({"backends": ["a"], "gateway": {"nodes": 2}}))
    assert assign_addresses(SUBNET, two, assigned) == {
        name: address for name, address in assigned.items() if name != "des-kong-3"
    }


def test_nine_kong_nodes_stay_below_the_backends():
    nine = host_names(settings_from({"backends": ["a"], "gateway": {"nodes": 9}}))
    assigned = assign_addresses(SUBNET, nine, {})
    assert assigned["des-kong-9"] == "10.77.0.19" and assigned["des-backend-a"] == "10.77.0.20"


def test_only_a_24_is_accepted():
    with pytest.raises(UserError, match=r"^local_subnet: expected a /24 such as 10.77.0.0/24, got 10.0.0.0/16$"):
        assign_addresses("10.0.0.0/16", hosts("a"), {})


def test_running_out_of_addresses_is_a_clear_error():
    many = [f"b{number}" for number in range(236)]
    with pytest.raises(
        UserError,
        match="^" + re.escape("local_subnet 10.77.0.0/24 has no free address left for des-backend-b235") + "$",
    ):
        assign_addresses(SUBNET, hosts(*many), {})


def test_nat_rule():
    assert nat_rule("br-des", SUBNET) == ["POSTROUTING", "-s", "10.77.0.0/24", "!", "-o", "br-des", "-j", "MASQUERADE"]


def test_nameservers_skip_loopback_ipv6_and_comments():
    text = (
        "# generated\nnameserver 127.0.0.53\nnameserver 10.255.255.53\nnameserver fd00::1\nsearch x\n"
        "nameserver 1.1.1.1\n"
    )
    assert host_nameservers(text) == ["10.255.255.53", "1.1.1.1"]


# What `ip -j -4 addr show` says on a machine with another project's bridge and a LAN address.
LIVE = [
    {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
    {"ifname": "eth0", "addr_info": [{"family": "inet", "local": "192.168.1.5", "prefixlen": 24}]},
    {"ifname": "br-other", "addr_info": [{"family": "inet", "local": "10.77.0.1", "prefixlen": 24}]},
    {"ifname": "br-des", "addr_info": [{"family": "inet", "local": "10.79.0.1", "prefixlen": 24}]},
    {"ifname": "vb-des-db", "addr_info": []},
]


@pytest.mark.parametrize(
    "subnet, overlap",
    [
        ("10.77.0.0/24", "10.77.0.1/24 on br-other"),  # another project's bridge: same address twice
        ("192.168.1.0/24", "192.168.1.5/24 on eth0"),  # this machine's own network
        ("10.79.0.0/24", None),  # this project's own bridge
        ("10.80.0.0/24", None),
    ],
)
def test_a_subnet_in_use_on_this_machine_is_found(subnet, overlap):
    assert subnet_in_use(subnet, LIVE, own_bridge="br-des") == overlap


def test_the_live_check_reads_this_machines_interfaces():
    # Loopback is on every machine: 127.0.0.0/24 would overlap it (the loader refuses it earlier).
    assert subnet_in_use("127.0.0.0/24", live_addresses(), own_bridge="br-none") == "127.0.0.1/8 on lo"
