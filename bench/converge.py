"""Where a converge's time goes, per backend count, on local hosts (a measurement, not a test).

  python bench/converge.py [--backends 2 8] [--runs 5] [--nodelay both|on|off] [--kong standin|exclude]

For each backend count: provision fresh local hosts (prefix `bench`, subnet 10.85.0.0/24; root
needed), then
  1. fresh converge     once, db + backends (`--limit`); Kong separately, see below
  2. code deploys      db + backends: a new commit with the same requirements (the lock and the
                        virtualenv are reused), then one with changed requirements (a new lock,
                        a new virtualenv), then a rollback (issue 22)
  3. no-change re-run   --runs times per TCP_NODELAY mode, modes interleaved (off, on, off, ...)
                        so a change of the machine's load hits both alike
and at the end one line of the figures issue 22 targets, with the machine's load beside them.
and destroy the hosts. Each pyinfra run goes through bench/trace.py (pyinfra's CLI with a
recorder), so every figure comes from the run itself: wall time; controller CPU (user+sys of the
pyinfra process, os.wait4); the time of each step of pyinfra's CLI (start-up, connect, prepare,
operations, finish); commands, file transfers and round trips per host and per role (round
trips: the replies the client waits for, counted in paramiko: 3 per command, more per SFTP file);
command latency (median, how many >= 35 ms); the slowest operations. A run that exits non-zero
or fails a host is reported as FAILED, never timed.
The fresh hosts hold no dpkg lock after boot unless `--apt-hold S` says so (the tests hold it 20 s).
The machine's load (1-min average) is printed before and after each case; >= 1.5 is flagged
(the hosts' own work counts in it: before a case the bench waits up to --settle s for it to fall).

Kong: its image cannot be pulled here (no Docker Hub). The fresh Kong run is made alone and must
stop exactly at the pull (reported, not timed). With `--kong standin` (default) a stand-in image
(tests/e2e/kong_standin.sh: busybox, NOT Kong) is then built under Kong's tag so that the
no-change runs cover the whole stack, Kong's container checks included (one untimed run creates
its container first). With `--kong exclude` the no-change runs leave the Kong host out. The output
says which. `--nodelay off` sets DEPLOY_SSH_NODELAY=0 (stack/ssh_nodelay.py): Nagle left on.
"""

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.local_platform import AppRepo  # noqa: E402

PREFIX, SUBNET, ADDRESS = "bench", "10.85.0.0/24", "10.85.0.1"
KEYS = "abcdefghijklmnopqrstuvwxyz"
SKIP = shutil.ignore_patterns(".venv", ".git", ".deploy", "__pycache__", ".pytest_cache", "config.yml")
PYTHON = str(ROOT / ".venv/bin/python")
STANDIN = ROOT / "tests/e2e/kong_standin.sh"
LOAD_WARNING = 1.5
# Issue 22's targets on a quiet machine (db + 2 backends), seconds.
TARGETS = {
    "fresh converge": 35,
    "code deploy, same requirements": 8,
    "code deploy, changed requirements": 14,
    "no-change": 1.6,
}
SLOWEST = 8
NAGLE_S = 0.035  # a command this slow or slower met a delayed ACK, or a busy host (issue 12)


def load() -> float:
    return os.getloadavg()[0]


def settle(limit_s: float) -> float:
    """Wait (at most `limit_s`) for the 1-min load to fall below LOAD_WARNING, so that a case does
    not start in the wake of the previous one (the hosts' own work counts in this machine's load:
    an 8-backend fresh converge leaves it near 5 for a minute); returns the load then."""
    deadline = time.monotonic() + limit_s
    while load() >= LOAD_WARNING and time.monotonic() < deadline:
        time.sleep(5)
    return load()


class Run:
    """One pyinfra run through bench/trace.py: status, wall, CPU, its --json report and its trace."""

    def __init__(self, project: Path, env: dict, args: list[str], label: str, timeout: float = 3600):
        trace = Path(tempfile.mkstemp(prefix="bench-trace-", suffix=".json")[1])
        argv = [PYTHON, str(ROOT / "bench/trace.py"), str(trace), "-y", "--json", "inventory.py", "deploy.py", *args]
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            started = time.monotonic()
            process = subprocess.Popen(argv, cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            try:
                # wait4, not wait(): the rusage of this very child (pyinfra), not of every child reaped so far.
                _, status, usage = _wait4(process, timeout)
            finally:
                self.wall = time.monotonic() - started
            out.seek(0), err.seek(0)
            self.stdout, self.stderr = out.read(), err.read()
        self.label, self.returncode = label, os.waitstatus_to_exitcode(status)
        self.cpu = usage.ru_utime + usage.ru_stime
        try:
            self.trace = json.loads(trace.read_text())
        except ValueError:
            self.trace = {"commands": [], "operations": [], "round_trips": {}}
        trace.unlink(missing_ok=True)
        self.changed, self.failed_hosts, self.report = Counter(), [], True
        try:
            results = json.loads(self.stdout)["results"]
            for operation in results["operations"]:
                self.changed.update(operation["success"])
            self.failed_hosts = list(results["failed_hosts"])
        except (ValueError, KeyError, TypeError):
            self.report = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.report and not self.failed_hosts

    def why(self) -> str:
        if not self.report:
            return f"exit {self.returncode}, no report: {(self.stderr.strip().splitlines() or ['?'])[-1][:200]}"
        # What pyinfra printed under the failed hosts' names: the failing command's own lines come
        # before its "Error: executed N commands".
        hosts = tuple(f"[{name}]" for name in self.failed_hosts)
        lines = [line.strip() for line in self.stderr.splitlines() if hosts and line.strip().startswith(hosts)]
        return f"exit {self.returncode}, failed hosts: {' '.join(self.failed_hosts) or 'none'}" + (
            f" ({' | '.join(lines[-4:])[:600]})" if lines else ""
        )


def _wait4(process: subprocess.Popen, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
            return pid, status, usage
        if time.monotonic() > deadline:
            process.kill()
        time.sleep(0.05)


def stats(values: list[float]) -> str:
    if not values:
        return "no successful run"
    return f"min {min(values):.2f}  median {statistics.median(values):.2f}  max {max(values):.2f}  (n={len(values)})"


def role_of(name: str) -> str:
    return "kong" if name.endswith("-kong") else "db" if name.endswith("-db") else "backend"


def per_host(run: Run) -> dict[str, dict]:
    hosts: dict[str, dict] = defaultdict(lambda: {"commands": 0, "transfers": 0, "round_trips": 0, "seconds": 0.0})
    for record in run.trace["commands"]:
        entry = hosts[record["host"]]
        entry["commands" if record["kind"] == "command" else "transfers"] += 1
        entry["seconds"] += record["s"]
    for name, count in run.trace["round_trips"].items():
        hosts[name]["round_trips"] = count
    return dict(hosts)


def print_counts(run: Run) -> None:
    hosts = per_host(run)
    print(f"    per host ({run.label}): commands / file transfers / round trips / seconds in commands")
    for name in sorted(hosts):
        entry = hosts[name]
        print(
            f"      {name:<18} {entry['commands']:>4} / {entry['transfers']:>3} / {entry['round_trips']:>4} / "
            f"{entry['seconds']:6.2f}"
        )
    roles = defaultdict(list)
    for name, entry in hosts.items():
        roles[role_of(name)].append(entry)
    durations = sorted(r["s"] for r in run.trace["commands"] if r["kind"] == "command")
    if durations:
        slow = sum(value >= NAGLE_S for value in durations)
        print(
            f"    command latency: median {1000 * statistics.median(durations):.0f} ms, {slow} of {len(durations)} "
            f"took >= {1000 * NAGLE_S:.0f} ms"
        )
    print(
        "    per role (mean per host): "
        + "; ".join(
            f"{role} x{len(entries)}: {statistics.mean(e['commands'] for e in entries):.0f} commands, "
            f"{statistics.mean(e['transfers'] for e in entries):.0f} transfers, "
            f"{statistics.mean(e['round_trips'] for e in entries):.0f} round trips"
            for role, entries in sorted(roles.items())
        )
    )


def phases(run: Run) -> dict[str, float] | None:
    """Seconds of each step of pyinfra's CLI in one run (bench/trace.py), or None if not recorded."""
    at = dict(run.trace.get("phases", []))
    try:
        return {
            "start-up (imports, settings, inventory)": at["make_inventory end"],
            "connect": at["connect_all end"] - at["connect_all start"],
            "prepare (deploy.py for each host)": at["load_deploy_file end"] - at["load_deploy_file start"],
            "operations": at["run_ops end"] - at["run_ops start"],
            "finish (results, disconnect)": at["exit"] - at["run_ops end"],
        }
    except KeyError:
        return None


def print_phases(runs: list[Run]) -> None:
    recorded = [split for split in map(phases, runs) if split]
    if recorded:
        print(
            "    where the wall time goes (median s): "
            + "; ".join(f"{name} {statistics.median(split[name] for split in recorded):.2f}" for name in recorded[0])
        )


def print_slowest(runs: list[Run]) -> None:
    """Operations by their median (over runs) of the slowest host's seconds."""
    seconds = defaultdict(list)
    for run in runs:
        worst = defaultdict(float)
        for record in run.trace["operations"]:
            worst[record["op"]] = max(worst[record["op"]], record["s"])
        for op, value in worst.items():
            seconds[op].append(value)
    ranked = sorted(seconds.items(), key=lambda item: -statistics.median(item[1]))[:SLOWEST]
    print(f"    slowest operations (slowest host, median over {len(runs)} run(s)):")
    for op, values in ranked:
        print(f"      {statistics.median(values):6.2f} s  {op}")


def print_command_list(run: Run, path: Path) -> None:
    """Every command of one run per host, grouped (how many times each), with the operation and
    fact that sent it; written to `path` (long) and summarised on screen (repeats only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for name in sorted({record["host"] for record in run.trace["commands"]}):
        records = [r for r in run.trace["commands"] if r["host"] == name]
        counted = Counter((r["text"].replace("\n", " ")[:110], r["op"], r["fact"] or "-") for r in records)
        lines.append(f"{name}: {len(records)} commands/transfers")
        for (text, op, fact), count in sorted(counted.items(), key=lambda item: (-item[1], item[0][1])):
            lines.append(f"  {count:>2}x  [{op} | fact {fact}]  {text}")
    path.write_text("\n".join(lines) + "\n")
    print(f"    commands per host of one {run.label} run: {path}")
    # On screen: what one host asks more than once (the same command text), and which operations ask.
    by_role = {}
    for name in sorted({record["host"] for record in run.trace["commands"]}):
        by_role.setdefault(role_of(name), name)
    for _role, name in sorted(by_role.items()):
        texts = defaultdict(list)
        for record in run.trace["commands"]:
            if record["host"] == name:
                # The whole recorded text: commands that differ only past their start are different questions.
                texts[(record["fact"] or "-", record["text"].replace("\n", " "))].append(record["op"].split(" | ")[-1])
        repeated = {key: ops for key, ops in texts.items() if len(ops) > 1}
        print(f"    asked more than once on {name}: " + ("nothing" if not repeated else ""))
        for (fact, text), ops in sorted(repeated.items(), key=lambda item: -len(item[1])):
            print(f"      {len(ops)}x {fact}: {text[:70]}  <- {'; '.join(ops)}")


def case(title: str, runs: list[Run], before: float) -> list[Run]:
    after = load()
    flag = (
        "  WARNING: load >= 1.5, timings are not those of a quiet machine" if max(before, after) >= LOAD_WARNING else ""
    )
    good = [run for run in runs if run.ok]
    print(f"  {title}: load {before:.2f} -> {after:.2f}{flag}")
    for run in runs:
        if not run.ok:
            print(f"    FAILED ({run.label}): {run.why()}: not timed")
    if good:
        print(f"    wall s:           {stats([run.wall for run in good])}")
        print(
            f"    controller CPU s: {stats([run.cpu for run in good])}  "
            f"(per host: {statistics.median(run.cpu for run in good) / max(1, len(per_host(good[0]))):.2f})"
        )
        changed = sum(good[-1].changed.values())
        print(f"    changed operations: {changed}" + (f" ({dict(good[-1].changed)})" if changed else ""))
    return good


def bench(count: int, args, work: Path) -> None:
    project = work / f"project-{count}"
    shutil.copytree(ROOT, project, ignore=SKIP)
    config = work / f"config-{count}.yml"
    repo = AppRepo(work / f"app-{count}", ADDRESS)
    config.write_text(
        yaml.safe_dump(
            {
                "project_prefix": PREFIX,
                "local_subnet": SUBNET,
                "backends": list(KEYS[:count]),
                "app_repo": repo.url,
                "app_ref": "main",
            }
        )
    )
    env = {
        **os.environ,
        "DEPLOY_HOME": str(work / f"home-{count}"),
        "DEPLOY_CONFIG": str(config),
        "DEPLOY_LOCAL_APT_HOLD": str(args.apt_hold),
    }
    env.pop("DEPLOY_SSH_NODELAY", None)
    modes = {"both": ["off", "on"], "on": ["on"], "off": ["off"]}[args.nodelay]
    env_of = {"on": env, "off": {**env, "DEPLOY_SSH_NODELAY": "0"}}
    kong = f"{PREFIX}-kong"
    print(f"\n== {count} backends ({count + 2} hosts: db, {count} backends, kong) ==", flush=True)
    try:
        started = time.monotonic()
        provision = subprocess.run(
            [PYTHON, "provision.py", "--provider", "local", "--yes"],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if provision.returncode != 0:
            print(f"  provisioning FAILED: {(provision.stderr.strip().splitlines() or ['?'])[-1]}")
            return
        print(
            f"  provision: {time.monotonic() - started:.0f} s; dpkg's lock held {args.apt_hold} s after boot "
            "(the simulated unattended-upgrades run)",
            flush=True,
        )
        repo.serve()

        before = settle(args.settle)
        fresh = Run(project, env_of[modes[-1]], ["--limit", "db", "--limit", "backends"], f"fresh, nodelay {modes[-1]}")
        good = case(f"fresh converge, db + {count} backends (Kong apart), nodelay {modes[-1]}", [fresh], before)
        if good:
            print_phases(good)
            print_counts(fresh)
            print_slowest(good)
        figures = {"fresh converge": fresh.wall if fresh.ok else None}
        figures.update(code_deploys(project, env_of[modes[-1]], repo, args.settle))
        kong_fresh = Run(project, env_of[modes[-1]], ["--limit", kong], "fresh kong")
        # All hosts of the run failed: pyinfra stops with "No hosts remaining" and prints no report.
        pulled = (
            kong_fresh.returncode != 0
            and kong_fresh.failed_hosts in ([], [kong])
            and "cannot pull" in kong_fresh.stderr
        )
        outcome = "stopped at the image pull, as expected here (no Docker Hub)" if pulled else "UNEXPECTED: "
        outcome += "" if pulled else kong_fresh.why()
        print(f"  fresh Kong alone: {outcome}; {kong_fresh.wall:.1f} s, not a Kong timing")
        with_kong = args.kong == "standin" and _standin(project, env, kong)
        limit = [] if with_kong else ["--limit", "db", "--limit", "backends"]
        scope = (
            "whole stack, Kong with a STAND-IN image (busybox, not Kong)"
            if with_kong
            else "db + backends only: Kong host EXCLUDED"
        )
        runs = {mode: [] for mode in modes}
        before = settle(args.settle)
        for index in range(args.runs):
            for mode in modes:
                run = Run(project, env_of[mode], limit, f"no-change, nodelay {mode}")
                runs[mode].append(run)
                print(
                    f"    no-change #{index + 1} nodelay {mode}: "
                    f"{f'{run.wall:.2f} s, CPU {run.cpu:.2f} s' if run.ok else 'FAILED: ' + run.why()}",
                    flush=True,
                )
        for mode in modes:
            good = case(f"no-change re-run ({scope}), nodelay {mode}", runs[mode], before)
            if good:
                print_phases(good)
                print_counts(good[0])
                print_slowest(good)
                print_command_list(good[0], Path(args.out) / f"commands-{count}-backends-nodelay-{mode}.txt")
        no_change = [run.wall for run in runs[modes[-1]] if run.ok]
        figures["no-change"] = statistics.median(no_change) if no_change else None
        print_figures(count, figures)
    finally:
        repo.stop()
        subprocess.run(
            [PYTHON, "provision.py", "--provider", "local", "destroy", "--yes"],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )


def code_deploys(project: Path, env: dict, repo: AppRepo, settle_s: float) -> dict[str, float | None]:
    """A code change with the same requirements, one with changed requirements, a rollback (db +
    backends; each timed alone, after the load settles)."""
    limit = ["--limit", "db", "--limit", "backends"]
    views = (repo.work / "despachos/views.py").read_text()
    requirements = (repo.work / "requirements.txt").read_text()
    steps = [
        ("code deploy, same requirements", {"despachos/views.py": views + "\n# bench: a code change\n"}),
        # six: one small pure-Python wheel, so the lock and the virtualenv are new.
        ("code deploy, changed requirements", {"requirements.txt": requirements.rstrip() + "\nsix==1.16.0\n"}),
    ]
    figures: dict[str, float | None] = {}
    for title, files in steps:
        repo.push_commit(f"bench: {title}", files)
        before = settle(settle_s)
        run = Run(project, env, limit, title)
        if case(title, [run], before):
            print_slowest([run])
        figures[title] = run.wall if run.ok else None
    before = settle(settle_s)
    argv = [PYTHON, "-m", "pyinfra", "-y", "inventory.py", "rollback.py", *limit]
    started = time.monotonic()
    rolled = subprocess.run(argv, cwd=project, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    figures["rollback"] = time.monotonic() - started if rolled.returncode == 0 else None
    print(
        f"  rollback: load {before:.2f} -> {load():.2f}: "
        + (f"{figures['rollback']:.2f} s" if rolled.returncode == 0 else "FAILED: " + rolled.stderr[-300:])
    )
    # Back to what app_ref names (untimed): else the first whole-stack "no-change" run would roll
    # the backends forward again, draining them on the Kong stand-in, which has no admin API.
    forward = Run(project, env, limit, "roll forward after the rollback")
    if not forward.ok:
        print(f"  roll forward after the rollback FAILED ({forward.why()})")
    return figures


def print_figures(count: int, figures: dict[str, float | None]) -> None:
    """Issue 22's figures in one place: each against its target (targets are for db + 2 backends)."""
    parts = []
    for name, value in figures.items():
        target = TARGETS.get(name) if count == 2 else None
        shown = "FAILED" if value is None else f"{value:.2f} s"
        parts.append(f"{name} {shown}" + (f" (target <= {target} s)" if target else ""))
    print(f"  FIGURES, {count} backends, load now {load():.2f}: " + "; ".join(parts))


def _standin(project: Path, env: dict, kong: str) -> bool:
    """Build the stand-in under Kong's configured tag on the Kong host, then one untimed deploy of
    Kong that creates its container. False (and why) when that cannot be done here."""
    from stack.settings import load_settings

    previous = os.environ.get("DEPLOY_CONFIG")
    os.environ["DEPLOY_CONFIG"] = env["DEPLOY_CONFIG"]
    try:
        image = load_settings().gateway.image
    finally:
        os.environ.pop("DEPLOY_CONFIG") if previous is None else os.environ.__setitem__("DEPLOY_CONFIG", previous)
    script = (
        "command -v busybox >/dev/null || DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 "
        "apt-get install -y -q busybox-static "
        f">/dev/null 2>&1; sh -s {image} <<'STANDIN'\n{STANDIN.read_text()}\nSTANDIN"
    )
    built = subprocess.run(
        # The login user (ubuntu) builds it as root through sudo, as every command on the hosts.
        [PYTHON, "provision.py", "ssh", kong, "--", f"sudo -n bash -c {shlex.quote(script)}"],
        cwd=project,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:
        print(f"  Kong stand-in could not be built ({(built.stderr.strip().splitlines() or ['?'])[-1]}): Kong excluded")
        return False
    warm = Run(project, env, ["--limit", kong], "kong with stand-in")
    if not warm.ok:
        print(f"  Kong with the stand-in FAILED ({warm.why()}): Kong excluded")
        return False
    print(f"  Kong stand-in ({image} = busybox, NOT Kong) built; its container created by one untimed run")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", type=int, nargs="+", default=[2, 8], help="backend counts to measure")
    parser.add_argument("--runs", type=int, default=5, help="no-change runs per TCP_NODELAY mode")
    parser.add_argument("--nodelay", choices=("both", "on", "off"), default="both")
    parser.add_argument("--kong", choices=("standin", "exclude"), default="standin")
    parser.add_argument(
        "--apt-hold",
        type=int,
        default=0,
        help="seconds the fresh hosts hold dpkg's lock after boot, as unattended-upgrades (tests: 20)",
    )
    parser.add_argument(
        "--out",
        default=str(ROOT / ".deploy" / "bench"),
        help="folder for the per-host command lists (default .deploy/bench/, git-ignored)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=120,
        help="seconds to wait at most, before each case, for the load to fall below 1.5",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("local hosts need root")
    if any(count < 1 or count > len(KEYS) for count in args.backends) or args.runs < 1:
        parser.error(f"--backends: 1..{len(KEYS)}; --runs: at least 1")
    print(f"bench: {os.cpu_count()} CPUs, load {load():.2f} at start; prefix {PREFIX}, subnet {SUBNET}")
    with tempfile.TemporaryDirectory(prefix="bench-") as work:
        for count in args.backends:
            bench(count, args, Path(work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
