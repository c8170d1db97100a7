"""Run by conftest.py as its own process: one moto server on 127.0.0.1, a free port.

Prints "host port" once it answers, then serves until its stdin closes. A process of its own keeps
moto's CPU on the other core and away from the test process (where pyinfra's gevent patching may
be active).
"""

import logging
import sys

from moto.server import ThreadedMotoServer

if __name__ == "__main__":
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(host, port, flush=True)
    sys.stdin.read()
    server.stop()
