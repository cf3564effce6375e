"""How long the web page takes to render the portfolio grid for the demo data, server side.

    .venv/bin/python -m bench.web_grid [--db demo-output/onboarding.db] [--runs 30]

Builds the demo in a temporary folder unless ``--db`` names one (a copy is used: the bench
registers its own actor to log in). Each page is requested in-process through Starlette's
TestClient, so the time is the server's (routing, session, database, rendering) with no network.
The grid is compared with a trivial page (the login page) and split into its two parts: the
data (``onboarding.web.portfolio.grid``) and the template. Target: grid under 200 ms.
Not a timed test; numbers vary with the machine.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

BENCH_ACTOR = "bench-koordinator"
BENCH_PASSWORD = "bench-password-1"
DEMO_NOW = "2021-06-30T17:00"
TARGET_MS = 200.0


def _timed(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm-up: caches, template compilation
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def _line(label: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    return f"  {label:<34} median {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms"


def _database(given: str | None, folder: Path) -> Path:
    from onboarding import actors, demo
    from onboarding.db import open_existing

    if given:
        source = Path(given)
    else:
        print("building the demo database (a few seconds)...")
        source = Path(demo.run(folder / "demo", echo=lambda _t: None).database)
    target = folder / "bench.db"
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    db = open_existing(target)
    try:
        actors.add(db, BENCH_ACTOR, password=BENCH_PASSWORD)
        actors.grant(db, BENCH_ACTOR, "coordinator")
    finally:
        db.close()
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="A demo database (default: build one).")
    parser.add_argument("--runs", type=int, default=30, help="Requests per page (default 30).")
    args = parser.parse_args()

    from starlette.testclient import TestClient

    from onboarding.db import open_existing
    from onboarding.web import create_app, i18n, portfolio
    from onboarding.web.app import make_environment

    os.environ.setdefault("ONBOARDING_NOW", DEMO_NOW)
    folder = Path(tempfile.mkdtemp(prefix="bench-web-"))
    try:
        db_path = _database(args.db, folder)
        with TestClient(create_app(db_path)) as client:
            token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
            assert token
            client.post(
                "/login",
                data={"csrf": token.group(1), "name": BENCH_ACTOR, "password": BENCH_PASSWORD},
            )
            grid_page = client.get("/grid")
            assert grid_page.status_code == 200, grid_page.text[:500]
            cells = grid_page.text.count('class="cell ')
            results = {
                "trivial page (GET /login, logged in)": _timed(
                    lambda: client.get("/login", follow_redirects=False), args.runs
                ),
                "grid page (GET /grid)": _timed(lambda: client.get("/grid"), args.runs),
                "grid page, one category": _timed(
                    lambda: client.get("/grid?category=ESDH"), args.runs
                ),
                "grid page as of 31-03-2021": _timed(
                    lambda: client.get("/grid?as_of=2021-03-31"), args.runs
                ),
            }
        db = open_existing(db_path)
        env = make_environment()
        try:
            day = date(2021, 6, 30)
            data = portfolio.grid(db, day)
            results["grid data only (portfolio.grid)"] = _timed(
                lambda: portfolio.grid(db, day), args.runs
            )
        finally:
            db.close()
        template = env.get_template("grid.html")
        context = {
            "grid": data,
            "options": {"categories": [], "vendors": [], "regions": [], "phases": []},
            "problem": None,
            "as_of": day,
            "today": day,
            "actor": BENCH_ACTOR,
            "actor_label": BENCH_ACTOR,
            "csrf": "x",
            "csrf_field": "csrf",
            "lang": "da",
            "languages": i18n.LANGUAGES,
            "path": "/grid",
            "here": "/grid",
            "flashes": [],
            "roles": {},
        }
        with i18n.language("da"):
            results["grid template only"] = _timed(lambda: template.render(context), args.runs)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"Web page, server-side render time ({args.runs} runs; {cells} cells in the grid):")
    for label, ms in results.items():
        print(_line(label, ms))
    grid_ms = statistics.median(results["grid page (GET /grid)"])
    verdict = "within" if grid_ms < TARGET_MS else "OVER"
    print(f"Grid median {grid_ms:.1f} ms: {verdict} the {TARGET_MS:.0f} ms target.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
