"""Wall time of a converge on local hosts, per backend count (a measurement, not a test).

  python bench/converge.py --backends 2 4 [--template templates/backend/gunicorn.conf.py.j2]

For each count: provision fresh local hosts (prefix `bench`, subnet 10.85.0.0/24), then time
  1. a fresh converge        pyinfra -y inventory.py deploy.py on new hosts
  2. a no-change re-run      the same again
  3. a template change       the same after one template gained a line (in a copy of the project)
and destroy the hosts. The project is copied to a temporary folder so the template edit never
touches the checkout. Needs root, like every local host.
"""

import argparse
import os
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.local_platform import AppRepo  # noqa: E402

SUBNET = "10.85.0.0/24"
ADDRESS = "10.85.0.1"
KEYS = "abcdefghijklmnopqrstuvwxyz"
SKIP = shutil.ignore_patterns(".venv", ".git", ".deploy", "__pycache__", ".pytest_cache", "config.yml")


def run(command, cwd, env, timeout=3600) -> tuple[float, subprocess.CompletedProcess]:
    started = time.monotonic()
    completed = subprocess.run(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=timeout)
    return time.monotonic() - started, completed


def summary(completed) -> str:
    """'12 changed, 3 failed host(s)' from pyinfra's --json results."""
    try:
        results = json.loads(completed.stdout)["results"]
    except (ValueError, KeyError, TypeError):
        return f"exit {completed.returncode}, no report"
    failed = results["failed_hosts"]
    text = f"{results['totals']['success']} changed"
    return text + (f", failed: {' '.join(failed)}" if failed else "")


def bench(count: int, template: str, work: Path) -> dict:
    project = work / f"project-{count}"
    shutil.copytree(ROOT, project, ignore=SKIP)
    home = work / f"home-{count}"
    config = work / f"config-{count}.yml"
    repo = AppRepo(work / f"app-{count}", ADDRESS)
    config.write_text(yaml.safe_dump({"project_prefix": "bench", "local_subnet": SUBNET,
                                      "backends": list(KEYS[:count]), "app_repo": repo.url, "app_ref": "main"}))
    env = {**os.environ, "DEPLOY_HOME": str(home), "DEPLOY_CONFIG": str(config)}
    python, pyinfra = str(ROOT / ".venv/bin/python"), str(ROOT / ".venv/bin/pyinfra")
    deploy = [pyinfra, "-y", "--json", "inventory.py", "deploy.py"]
    row = {"backends": count, "hosts": count + 2}
    try:
        row["provision"], completed = run([python, "provision.py", "--provider", "local", "--yes"], project, env)
        if completed.returncode != 0:
            raise SystemExit(f"provisioning failed:\n{completed.stdout}{completed.stderr}")
        repo.serve()
        for label in ("fresh", "no-change", "template"):
            if label == "template":
                with open(project / template, "a") as handle:
                    handle.write("\n# bench: one template changed\n")
            row[label], completed = run(deploy, project, env)
            row[f"{label} result"] = summary(completed)
            print(f"  {count} backends, {label}: {row[label]:.0f} s ({row[f'{label} result']})", flush=True)
    finally:
        repo.stop()
        run([python, "provision.py", "--provider", "local", "destroy", "--yes"], project, env)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", type=int, nargs="+", default=[2, 4], help="backend counts to measure")
    parser.add_argument("--template", default="templates/backend/gunicorn.conf.py.j2",
                        help="template (relative to the project) that gains a line before the third run")
    args = parser.parse_args()
    if not (ROOT / args.template).exists():
        parser.error(f"--template: {args.template} does not exist")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-") as work:
        for count in args.backends:
            rows.append(bench(count, args.template, Path(work)))
    print()
    print(f"{'backends':>8} {'hosts':>5} {'provision':>10} {'fresh':>8} {'no-change':>10} {'template':>9}")
    for row in rows:
        print(f"{row['backends']:>8} {row['hosts']:>5} {row['provision']:>9.0f}s {row['fresh']:>7.0f}s "
              f"{row['no-change']:>9.0f}s {row['template']:>8.0f}s")
    for row in rows:
        print(f"{row['backends']} backends: fresh {row['fresh result']}; no-change {row['no-change result']}; "
              f"template {row['template result']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
