"""Send one hand-made TCP SYN as an Ethernet frame and report what answers (an nmap-style SYN probe).

The kernel refuses to send a packet addressed to 127.0.0.1 out of a real interface, so a neighbour
that wants to reach another host's loopback (moby issue 45610: Docker's DNAT of a port published on
127.0.0.1) has to write the frame itself. This does it with an AF_PACKET socket on this machine's
side of the test bridge: the frame goes to the target host's MAC address, and whatever the target
sends back to our address is read from the same socket before our own kernel sees it.
"""

import os
import socket
import struct
import time
from pathlib import Path

ETH_P_IP = 0x0800
SYN, RST, ACK = 0x02, 0x04, 0x10


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def syn_frame(src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, sport: int, dport: int, seq: int) -> bytes:
    source, destination = socket.inet_aton(src_ip), socket.inet_aton(dst_ip)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, SYN, 64240, 0, 0)
    pseudo = source + destination + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", _checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), os.getpid() & 0xFFFF, 0, 64, socket.IPPROTO_TCP, 0, source, destination
    )
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return _mac(dst_mac) + _mac(src_mac) + struct.pack("!H", ETH_P_IP) + ip + tcp


def probe(interface: str, dst_mac: str, src_ip: str, dst_ip: str, dport: int, timeout: float = 3) -> str | None:
    """'syn-ack' (a socket accepted), 'rst' (a host stack answered: nothing listens) or None (no answer)."""
    src_mac = Path(f"/sys/class/net/{interface}/address").read_text().strip()
    sport = 40000 + int.from_bytes(os.urandom(2), "big") % 20000
    seq = int.from_bytes(os.urandom(4), "big")
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP)) as sock:
        sock.bind((interface, ETH_P_IP))
        sock.send(syn_frame(src_mac, dst_mac, src_ip, dst_ip, sport, dport, seq))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                frame = sock.recv(65535)
            except TimeoutError:
                break
            ip = frame[14:]
            if len(ip) < 40 or ip[9] != socket.IPPROTO_TCP:
                continue
            tcp = ip[(ip[0] & 0x0F) * 4 :]
            their_port, our_port, _, acked = struct.unpack("!HHII", tcp[:12])
            if (socket.inet_ntoa(ip[12:16]), their_port, our_port) != (dst_ip, dport, sport):
                continue
            if acked != (seq + 1) & 0xFFFFFFFF:
                continue
            flags = tcp[13]
            if flags & (SYN | ACK) == SYN | ACK:
                return "syn-ack"
            if flags & RST:
                return "rst"
    return None
