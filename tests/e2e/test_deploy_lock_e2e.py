"""The deploy lock on real hosts: two runs racing for it, a deploy that outlives the old expiry,
a lock held from another place, and rollback's refusals.

Racers are real processes of this project's code (stack/deploy_lock.py's take and give_back, as
deploy.py and rollback.py call them), reaching the database host through OpenSSH as a run without
pyinfra's connection does; each waits for "go" on its stdin so that both ask at the same moment.
"""

import select
import subprocess
import sys
import time

import pytest

from stack.deploy_lock_scripts import LockPlace
from tests.e2e.host_checks import RUNNING, DeployLockHolder, TableLock, deploy_lock
from tests.e2e.local_platform import PYINFRA, ROOT, deploy_ok

pytestmark = pytest.mark.e2e

TRIES = 100

# One racer: on "go" asks for the lock and answers `proceeds` or `refused <the refusal>`; on
# "give" gives it back and answers `given`. Killed outright, it abandons whatever it holds.
RACER = """
import sys
from stack import deploy_lock

for line in sys.stdin:
    if line.strip() == "go":
        try:
            deploy_lock.take("race")
            print("proceeds", flush=True)
        except SystemExit:
            print("refused", flush=True)
    elif line.strip() == "give":
        deploy_lock.give_back()
        print("given", flush=True)
"""


class Racer:
    def __init__(self, platform):
        self.process = subprocess.Popen(
            [sys.executable, "-c", RACER],
            cwd=ROOT,
            env=platform.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def send(self, word: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(word + "\n")
        self.process.stdin.flush()

    def answer(self, timeout: float = 60) -> str:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        assert ready, "a racer did not answer"
        return self.process.stdout.readline().strip()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(timeout=60)


def plant_an_expired_lock(platform, ssh, db: str) -> None:
    """What an hour-old lock left by a dead run looked like (the file lock before this one)."""
    code, output = ssh(
        db,
        "mkdir -p /var/lib/sprint2-deploy && echo 'ghost@gone (pid 9, run dead) deploying main since then' "
        "> /var/lib/sprint2-deploy/lock && touch -d '2 hours ago' /var/lib/sprint2-deploy/lock",
    )
    assert code == 0, output


def wait_until_free(ssh, db: str, seconds: float = 10) -> None:
    """A session whose run died ends as soon as its connection does: a moment, not an expiry."""
    deadline = time.monotonic() + seconds
    while (held := deploy_lock(ssh, db)) != {"host": None, "advisory": None}:
        assert time.monotonic() < deadline, f"the deploy lock is still held: {held}"
        time.sleep(0.1)


def test_rollback_with_no_earlier_release_says_so_in_one_line_and_gives_the_lock_back(platform, deployed, ssh):
    """Two or more backends: it once printed its line, then a gevent traceback from the lock's
    give-back at exit (`Exception ignored in atexit callback: give_back`)."""
    (db,) = platform.names("db")
    backends = platform.names("backend")
    assert len(backends) >= 2
    # Earlier modules may have served other commits here: each backend's history is made to name
    # only the release it serves (as the app user, who owns it), and put back afterwards.
    history = "/srv/sprint2/releases/.history"
    saved = {}
    for name in backends:
        code, saved[name] = ssh(name, f"cat {history}")
        assert code == 0, saved[name]
        code, out = ssh(
            name,
            f'line="$(date -u +%Y-%m-%dT%H:%M:%SZ) $(basename $(readlink -f /srv/sprint2/current))" && '
            f'runuser -u sprint2 -- sh -c \'printf "%s\\n" "$1" > {history}\' sh "$line"',
        )
        assert code == 0, out
    try:
        completed = platform.run_rollback(timeout=300)
    finally:
        for name, text in saved.items():
            text = text if text.endswith("\n") else text + "\n"
            ssh(name, f"runuser -u sprint2 -- sh -c 'cat > {history}' <<'HISTORY'\n{text}HISTORY")
    assert completed.returncode != 0
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no earlier release to roll back to" in errors[0], completed.stderr[-3000:]
    assert "Traceback" not in completed.stderr and "Exception ignored" not in completed.stderr, completed.stderr[-3000:]
    wait_until_free(ssh, db)


def test_two_runs_racing_for_an_expired_or_abandoned_lock_exactly_one_proceeds_every_time(platform, deployed, ssh):
    (db,) = platform.names("db")
    racers = [Racer(platform), Racer(platform)]
    outcomes = []
    try:
        for attempt in range(TRIES):
            plant_an_expired_lock(platform, ssh, db)
            for racer in racers:
                racer.send("go")
            answers = [racer.answer() for racer in racers]
            outcomes.append(answers)
            winners = [racer for racer, answer in zip(racers, answers, strict=True) if answer == "proceeds"]
            if attempt % 2 and len(winners) == 1:
                # The winner dies holding it (SIGKILL: nothing given back): the next pair races
                # for an abandoned lock.
                index = racers.index(winners[0])
                winners[0].kill()
                racers[index] = Racer(platform)
                wait_until_free(ssh, db)
            else:
                for racer in winners:
                    racer.send("give")
                    assert racer.answer() == "given"
    finally:
        for racer in racers:
            racer.close()
    proceeded = [sum(answer == "proceeds" for answer in answers) for answers in outcomes]
    assert proceeded == [1] * TRIES, (
        f"{proceeded.count(2)} of {TRIES} races let both runs proceed, {proceeded.count(0)} neither"
    )


def test_a_lock_held_from_another_place_refuses_a_deploy_and_unlock_ends_that_session(
    platform, deployed, run_deploy, provision, ssh
):
    """PostgreSQL's advisory lock alone, as a managed database's place would hold it (a session
    from a backend): a deploy through the db host is refused naming it; unlock ends it."""
    (db,) = platform.names("db")
    line = "carol@ci (pid 7, run 777777777777) deploying v9 since 2026-12-06T10:00:00Z"
    elsewhere = DeployLockHolder(platform, db, line, LockPlace(host_lock=False))
    try:
        assert elsewhere.answer == "acquired"
        assert deploy_lock(ssh, db) == {"host": None, "advisory": line}
        blocked = run_deploy()
        refusals = [row for row in blocked.stderr.splitlines() if "another deploy holds the lock" in row]
        assert refusals == [
            f"error: another deploy holds the lock on {db}: {line}; wait for it to end, "
            "or if that run is dead: python provision.py unlock"
        ], blocked.stderr[-3000:]
        released = provision("unlock")
        assert released.returncode == 0 and f"released: {line}" in released.stdout, released.output
    finally:
        elsewhere.end()
    wait_until_free(ssh, db)
    assert "no deploy lock is held" in provision("unlock").stdout


def test_a_run_whose_connection_hangs_is_ended_by_unlock(platform, deployed, run_deploy, provision, ssh):
    """A holder that is alive but stuck (its laptop asleep: sshd keeps its session until TCP
    keepalive gives up): deploys are refused naming it until unlock ends its session."""
    (db,) = platform.names("db")
    line = "ghost@gone (pid 9, run dead) deploying main since then"
    stuck = DeployLockHolder(platform, db, line)
    try:
        assert stuck.answer == "acquired"
        assert deploy_lock(ssh, db)["host"] == line
        blocked = run_deploy()
        assert blocked.returncode != 0 and f"holds the lock on {db}: {line};" in blocked.stderr, blocked.stderr[-2000:]
        assert "Traceback" not in blocked.stderr
        released = provision("unlock")
        assert released.returncode == 0, released.output
        assert released.stdout.strip() == f"deploy lock released: {line} (its session on {db} was ended)"
        assert stuck.process.wait(timeout=30) is not None  # its session is gone on the host
    finally:
        stuck.end()
    wait_until_free(ssh, db)
    deploy_ok(platform, run_deploy).assert_no_changes(hosts=platform.names("db") + platform.names("backend"))
    wait_until_free(ssh, db)  # given back after the last operation


def age_every_lock_file(ssh, db: str) -> None:
    """Whatever the lock keeps on the db host, made two hours old: past the old expiry (an hour)."""
    code, output = ssh(
        db,
        "for f in /var/lib/sprint2-deploy/lock /run/sprint2-deploy/lock /run/sprint2-deploy/holder; do "
        "[ ! -e $f ] || touch -d '2 hours ago' $f; done",
    )
    assert code == 0, output


def test_a_deploy_that_outlives_the_old_expiry_keeps_the_lock(platform, deployed, run_deploy, app_repo, ssh):
    """The first deploy waits in migrate (a table lock); its lock made older than the old expiry
    would have been taken over: a second deploy is still refused, naming the first."""
    (db,) = platform.names("db")
    models = (app_repo.work / "pedidos" / "models.py").read_text()
    sha = app_repo.push_commit(
        "Pedido: urgente",
        {
            "pedidos/models.py": models.replace(
                "    cantidad = models.PositiveIntegerField()\n",
                "    cantidad = models.PositiveIntegerField()\n    urgente = models.BooleanField(default=False)\n",
            )
        },
    )
    with TableLock(platform, ssh, "django_migrations") as table:
        first = platform.start_deploy()
        try:
            table.wait_for_a_blocked_writer()
            held = deploy_lock(ssh, db)
            assert held["host"] and held["host"] == held["advisory"] and "deploying main since" in held["host"], held
            age_every_lock_file(ssh, db)
            try:
                second = subprocess.run(
                    [PYINFRA, "-y", "inventory.py", "deploy.py"],
                    cwd=ROOT,
                    env=platform.env,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=240,
                )
            except subprocess.TimeoutExpired:
                pytest.fail("the second deploy took the lock over and went on (it waited on the table lock)")
            refusals = [row for row in second.stderr.splitlines() if "another deploy holds the lock" in row]
            assert len(refusals) == 1 and held["host"] in refusals[0], second.stderr[-3000:]
            assert first.poll() is None, "the first deploy ended while it should wait in migrate"
        except BaseException:
            first.kill()
            raise
    assert first.wait(timeout=900) in (0, 1), first.stdout.read()[-4000:] if first.stdout else ""
    wait_until_free(ssh, db)
    deploy_ok(platform, run_deploy)
    assert {name: ssh(name, RUNNING)[1].strip() for name in platform.names("backend")} == dict.fromkeys(
        platform.names("backend"), sha
    )
