"""Keep CPU cores busy, to run the test suite (or anything) on a loaded machine.

    python benchmarks/cpu_load.py --cores 1 &      # one core busy until stopped
    python benchmarks/cpu_load.py --cores 1 -- bash .ci/run   # busy while the command runs

Each busy core is a process spinning on arithmetic (no I/O, no memory growth), so what it
takes from the machine is steady and known. With a command after ``--``, the load starts
first, the command runs, the load stops, and the command's exit status is returned.
"""

from __future__ import annotations

import argparse
import multiprocessing
import subprocess
import sys
import time


def spin() -> None:
    value = 0
    while True:
        value = (value * 1103515245 + 12345) % 2**31


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", type=int, default=1, help="busy processes to run (default 1)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND...: run it under the load")
    args = parser.parse_args(argv)
    if args.cores < 1:
        parser.error(f"--cores {args.cores}: give 1 or more")
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    workers = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.cores)]
    for worker in workers:
        worker.start()
    try:
        if command:
            return subprocess.run(command).returncode
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 130
    finally:
        for worker in workers:
            worker.terminate()


if __name__ == "__main__":
    sys.exit(main())
