#!/usr/bin/python3
"""A Kong STAND-IN that proxies: `kong config parse FILE`, `kong reload`, `kong docker-start`.

Built into an image by kong_proxy_standin.sh on a test host (Kong's image cannot be pulled here).
It mimics only the outside of Kong that the gateway tier's deploy relies on, and proves nothing
about Kong itself:
- the proxy (KONG_PROXY_LISTEN) sends each request to the next HEALTHY target of kong.yml, round
  robin, retrying the next one on a connection failure (as Kong's `retries`), 503 when none is left;
- the admin API (KONG_ADMIN_LISTEN) answers /status, /upstreams/backend-cluster/health, /services,
  /plugins, and POST /upstreams/backend-cluster/targets/<ip:port>/(healthy|unhealthy) (404 for a
  target it does not know), each POST logged with its time in /tmp/admin-calls;
- `kong reload` re-reads kong.yml in the running process (SIGHUP; health marks start HEALTHY again,
  as a reloaded Kong's new workers do) and logs its time in /tmp/reloads.
Not covered: Kong's own health checks (active probes, passive circuit breaker), plugins (the rate
limit, the correlation id), nginx's graceful reload, Kong's real timeouts.
"""

import http.client
import http.server
import json
import os
import re
import signal
import sys
import threading
import time

UPSTREAM = "backend-cluster"
TARGET = re.compile(r'"(\d+\.\d+\.\d+\.\d+:\d+)"')
HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te", "trailer"}
RETRIES = 5
lock = threading.Lock()
targets: dict[str, str] = {}
turn = [0]
served = [0]


def log(path: str, line: str) -> None:
    with open(path, "a") as handle:
        handle.write(f"{time.time():.3f} {line}\n")


def load() -> None:
    with open(os.environ["KONG_DECLARATIVE_CONFIG"]) as handle:
        found = TARGET.findall(handle.read())
    with lock:
        targets.clear()
        targets.update({target: "HEALTHY" for target in found})


def listen(variable: str, default: str) -> tuple[str, int]:
    address = os.environ.get(variable, default).split(",")[0].split()[0]
    host, _, port = address.rpartition(":")
    return host, int(port)


class Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args) -> None:
        pass

    def answer(self, status: int, body: bytes = b"", kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Admin(Quiet):
    def do_GET(self) -> None:
        with lock:
            health = [{"target": t, "weight": 100, "health": h} for t, h in targets.items()]
        pages = {
            "/status": {
                "server": {"total_requests": served[0], "connections_active": 1, "connections_accepted": 1},
                "database": {"reachable": True},
            },
            f"/upstreams/{UPSTREAM}/health": {"data": health, "next": None},
            "/services": {"data": [{"name": "backend-service", "protocol": "http", "host": UPSTREAM, "retries": 5}]},
            "/plugins": {"data": [{"name": "rate-limiting", "enabled": True}]},
        }
        page = pages.get(self.path.rstrip("/") or "/")
        self.answer(200, json.dumps(page).encode()) if page is not None else self.answer(
            404, b'{"message":"Not found"}'
        )

    def do_POST(self) -> None:
        match = re.fullmatch(rf"/upstreams/{UPSTREAM}/targets/([0-9.:]+)/(healthy|unhealthy)", self.path)
        if not match:
            return self.answer(404, b'{"message":"Not found"}')
        target, health = match.groups()
        with lock:
            known = target in targets
            if known:
                targets[target] = health.upper()
        log("/tmp/admin-calls", f"{target} {health}" + ("" if known else " unknown"))
        self.answer(204) if known else self.answer(404, b'{"message":"Not found"}')


class Proxy(Quiet):
    def relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP and k.lower() != "host"}
        headers["Host"] = UPSTREAM
        for _ in range(RETRIES + 1):
            with lock:
                healthy = [t for t, h in targets.items() if h == "HEALTHY"]
                if not healthy:
                    break
                target = healthy[turn[0] % len(healthy)]
                turn[0] += 1
            address, port = target.rsplit(":", 1)
            connection = http.client.HTTPConnection(address, int(port), timeout=60)
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except OSError:
                continue  # refused or reset before an answer: the next target, as Kong retries
            finally:
                connection.close()
            served[0] += 1
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.answer(503, b'{"message":"failure to get a peer from the ring-balancer"}')

    do_GET = do_POST = do_HEAD = relay


def serve(handler, address: tuple[str, int]) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(address, handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def start() -> None:
    load()
    signal.signal(signal.SIGHUP, lambda *_: (load(), log("/tmp/reloads", "reload")))
    serve(Proxy, listen("KONG_PROXY_LISTEN", "0.0.0.0:8000"))
    serve(Admin, listen("KONG_ADMIN_LISTEN", "127.0.0.1:8001"))
    if os.environ.get("KONG_STATUS_LISTEN"):
        serve(Admin, listen("KONG_STATUS_LISTEN", ""))
    # Not signal.pause(): a signal the kernel hands to a server thread would never wake it, and
    # Python runs handlers in the main thread only, when it next wakes.
    while True:
        time.sleep(0.1)


def reloads() -> int:
    try:
        with open("/tmp/reloads") as handle:
            return len(handle.readlines())
    except FileNotFoundError:
        return 0


def main(args: list[str]) -> int:
    if args[:2] == ["config", "parse"] and len(args) == 3:
        with open(args[2]) as handle:
            text = handle.read()
        if re.search(r'^_format_version: "2\.1"', text, re.M) and "BROKEN" not in text:
            print("parse successful")
            return 0
        print(f"Error: Failed parsing: {args[2]}: stand-in rejects this file", file=sys.stderr)
        return 1
    if args == ["reload"]:
        # Done when the server logged it (as `kong reload` returns once nginx took the new config).
        before = reloads()
        os.kill(1, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while reloads() == before:
            if time.monotonic() > deadline:
                print("Error: the stand-in did not reload within 10 s", file=sys.stderr)
                return 1
            time.sleep(0.05)
        print("Kong reloaded")
        return 0
    if args == ["docker-start"]:
        start()
    print(f"stand-in kong: unsupported: {' '.join(args)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
