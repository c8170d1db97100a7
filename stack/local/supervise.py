"""Keep one local host up across reboots from inside, as EC2 does: `systemctl reboot` in the host
makes systemd-nspawn exit with status 133, and this starts it again with the same arguments.
Any other exit (a poweroff, a failed boot) ends the supervision with nspawn's status, and SIGTERM
or SIGINT is passed on to nspawn (a clean poweroff of the host) and ends it too.

    python3 supervise.py systemd-nspawn --boot --machine=NAME ...

Stand-alone on purpose (no project imports): it outlives provision.py, whatever happens to the
checkout it was started from. This machine's PID 1 is not always systemd, so no systemd unit
with Restart= can do this job.
"""

import signal
import subprocess
import sys

REBOOTED = 133  # systemd-nspawn's exit status when the container asked for a reboot


def main(argv: list[str]) -> int:
    child: subprocess.Popen | None = None
    stopping = False

    def pass_on(signum, frame):
        nonlocal stopping
        stopping = True
        if child and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, pass_on)
    signal.signal(signal.SIGINT, pass_on)
    while True:
        child = subprocess.Popen(argv)
        if stopping:  # the signal came while no nspawn ran
            child.send_signal(signal.SIGTERM)
        status = child.wait()
        if status != REBOOTED or stopping:
            return status
        print("supervise.py: the host rebooted; booting it again", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
