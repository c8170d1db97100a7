"""The local hosts' network: one bridge per project prefix, NAT to the outside, static addresses.

The bridge takes .1 of `local_subnet`; the database gets .10, the Kong nodes .11 upward (at most
9 nodes: .11-.19), backends .20 upward. An address once recorded in the state is kept, so adding
or removing a backend or a Kong node never renumbers the others.
"""

import hashlib
import ipaddress
import json
import os
import subprocess

from stack.errors import UserError
from stack.local import sysctls

FIXED = {"db": 10, "rds": 10}  # a stack has a db host or the RDS stand-in, never both
# gateway.nodes is at most 9 (tasks/kong/settings.py): the nodes never reach the backends' range.
FIRST = {"kong": 11, "backend": 20}
LAST = {"kong": 19, "backend": 254}


def bridge_name(prefix: str) -> str:
    """A Linux interface name (at most 15 characters) unique to the prefix."""
    name = f"br-{prefix}"
    if len(name) <= 15:
        return name
    digest = hashlib.sha1(prefix.encode()).hexdigest()[:4]
    return f"br-{prefix[:7]}-{digest}"


def gateway_address(subnet: str) -> str:
    return str(ipaddress.IPv4Network(subnet)[1])


def assign_addresses(subnet: str, hosts: dict[str, tuple[str, str | None]], recorded: dict[str, str]) -> dict[str, str]:
    """name -> address for every wanted host; recorded addresses are kept, new Kong nodes take the
    lowest free address from .11 upward and new backends from .20 upward, in the order of `hosts`."""
    network = ipaddress.IPv4Network(subnet)
    if network.prefixlen != 24:
        raise UserError(f"local_subnet: expected a /24 such as 10.77.0.0/24, got {subnet}")
    taken = {address for name, address in recorded.items() if name in hosts}
    assigned = {}
    for name, (role, _key) in hosts.items():
        if name in recorded:
            assigned[name] = recorded[name]
        elif role in FIXED:
            assigned[name] = str(network[FIXED[role]])
        else:
            for offset in range(FIRST[role], LAST[role] + 1):
                candidate = str(network[offset])
                if candidate not in taken:
                    break
            else:
                raise UserError(f"local_subnet {subnet} has no free address left for {name}")
            assigned[name] = candidate
        taken.add(assigned[name])
    return assigned


def nat_rule(bridge: str, subnet: str) -> list[str]:
    """The POSTROUTING rule (without -A/-C/-D) that lets the hosts reach the Debian mirror."""
    return ["POSTROUTING", "-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE"]


def _run(*command: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise UserError(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return result


def subnet_in_use(subnet: str, interfaces: list[dict], own_bridge: str) -> str | None:
    """'ADDRESS/PREFIX on IFACE' for the first address of this machine, outside the project's own
    bridge, whose network overlaps `subnet`; None when the subnet is free. A second bridge with an
    address already in use sends the hosts' traffic to the other network's machines."""
    wanted = ipaddress.IPv4Network(subnet)
    for interface in interfaces:
        if interface.get("ifname") == own_bridge:
            continue
        for address in interface.get("addr_info", []):
            if address.get("family") != "inet":
                continue
            network = ipaddress.IPv4Interface(f"{address['local']}/{address['prefixlen']}").network
            if network.overlaps(wanted):
                return f"{address['local']}/{address['prefixlen']} on {interface['ifname']}"
    return None


def live_addresses() -> list[dict]:
    """This machine's IPv4 addresses, per interface (`ip -j -4 addr show`)."""
    return json.loads(_run("ip", "-j", "-4", "addr", "show").stdout or "[]")


def check_subnet_free(subnet: str, own_bridge: str) -> None:
    overlap = subnet_in_use(subnet, live_addresses(), own_bridge)
    if overlap:
        raise UserError(
            f"local_subnet {subnet} overlaps {overlap} (another project's bridge or this machine's "
            "own network): choose another private /24 for local_subnet"
        )


def bridge_exists(bridge: str) -> bool:
    return _run("ip", "link", "show", "dev", bridge, check=False).returncode == 0


def nat_exists(bridge: str, subnet: str) -> bool:
    return _run("iptables", "-t", "nat", "-C", *nat_rule(bridge, subnet), check=False).returncode == 0


def nat_found(bridge: str, subnet: str) -> bool | None:
    """Whether the NAT rule is in place, or None for a user who may not read the rules (iptables
    needs root, and is not on an ordinary user's PATH): `plan` runs without root."""
    return nat_exists(bridge, subnet) if os.geteuid() == 0 else None


def ensure_network(bridge: str, subnet: str) -> None:
    """Bridge with the gateway address, forwarding on, NAT rule present (each step only if missing)."""
    prefixlen = ipaddress.IPv4Network(subnet).prefixlen
    if not bridge_exists(bridge):
        _run("ip", "link", "add", bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{gateway_address(subnet)}/{prefixlen}", "dev", bridge)
    _run("ip", "link", "set", bridge, "up")
    # After the bridge: a destroy that finds any bridge leaves forwarding on (sysctls.py).
    found = sysctls.change(sysctls.IP_FORWARD, "1")
    if found is not None:
        print(
            f"set {sysctls.IP_FORWARD} from {found} to 1 (the hosts' NAT): put back after the last local host",
            flush=True,
        )
    if not nat_exists(bridge, subnet):
        _run("iptables", "-t", "nat", "-A", *nat_rule(bridge, subnet))


def bridges() -> list[str]:
    """Every bridge of this machine: each project's br-<prefix>, also those of Docker, libvirt or
    LXC, which need forwarding as much as ours."""
    links = json.loads(_run("ip", "-j", "link", "show", "type", "bridge").stdout or "[]")
    return sorted(link["ifname"] for link in links if link.get("ifname"))


def remove_network(bridge: str, subnet: str) -> None:
    while nat_exists(bridge, subnet):
        _run("iptables", "-t", "nat", "-D", *nat_rule(bridge, subnet))
    if bridge_exists(bridge):
        _run("ip", "link", "delete", bridge)


def host_nameservers(resolv_conf: str) -> list[str]:
    """IPv4 nameservers of this machine's resolv.conf (the hosts use the same ones)."""
    servers = []
    for line in resolv_conf.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                if ipaddress.ip_address(fields[1]).version == 4 and not fields[1].startswith("127."):
                    servers.append(fields[1])
            except ValueError:
                continue
    return servers
