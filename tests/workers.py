"""A worker process for the concurrency tests: runs CLI command lines one after another.

``python -m tests.workers JOB.json`` reads ``{"go": FILE, "commands": [[arg, ...], ...]}``,
touches ``JOB.json.ready``, waits until the file ``go`` exists (so every worker starts
together, after its imports), runs
each command through the real CLI code in this process, and writes ``JOB.json.out`` with one
``{"args", "code", "stdout", "stderr"}`` per command.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from click.testing import CliRunner

import cli


def main(job_path: str) -> int:
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    go = Path(job["go"])
    Path(f"{job_path}.ready").touch()
    deadline = time.monotonic() + 60
    while not go.exists():
        if time.monotonic() > deadline:
            return 3
        time.sleep(0.005)
    runner = CliRunner()
    results = []
    for args in job["commands"]:
        result = runner.invoke(cli.cli, args)
        results.append(
            {
                "args": args,
                "code": result.exit_code,
                "stdout": result.stdout,
                "stderr": result.stderr,
                "exception": None
                if result.exception is None or isinstance(result.exception, SystemExit)
                else repr(result.exception),
            }
        )
    out = Path(f"{job_path}.out")
    out.write_text(json.dumps(results, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
