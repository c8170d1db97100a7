"""What loading the settings costs (a measurement, not a test; issue 22).

  python bench/settings_load.py [--runs 15]

Each figure is the median of --runs fresh interpreters, reading config.example.yml:
  bare python            `python -c pass`: the floor every command pays
  settings, standalone   import stack.settings and load_settings(), timed from outside
  settings, in a deploy  the same, timed inside a process that has already imported what the
                         pyinfra CLI imports (pyinfra, its CLI, paramiko, jinja2): what a deploy pays
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOAD = "from stack.settings import load_settings; load_settings()"
IN_DEPLOY = (
    "import time, pyinfra.api, pyinfra_cli.main, paramiko, jinja2\n"
    "started = time.perf_counter()\n"
    f"{LOAD}\n"
    "print(time.perf_counter() - started)\n"
)


def outside(code: str, runs: int, env: dict) -> float:
    """Median wall seconds of `python -c code` in a fresh interpreter."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def inside(runs: int, env: dict) -> float:
    """Median seconds the settings take inside a process that imported pyinfra's CLI first."""
    argv = [sys.executable, "-c", IN_DEPLOY]
    done = [subprocess.run(argv, cwd=ROOT, env=env, check=True, capture_output=True, text=True) for _ in range(runs)]
    return statistics.median(float(run.stdout) for run in done)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    env = {**os.environ, "DEPLOY_CONFIG": str(ROOT / "config.example.yml")}
    print(f"settings load, median of {args.runs} fresh interpreters, load {os.getloadavg()[0]:.2f}:")
    bare = outside("pass", args.runs, env)
    print(f"  bare python            {bare:.3f} s")
    print(f"  settings, standalone   {outside(LOAD, args.runs, env):.3f} s (target <= 0.1 s)")
    print(f"  settings, in a deploy  {inside(args.runs, env):.3f} s (target <= 0.1 s)")


if __name__ == "__main__":
    main()
