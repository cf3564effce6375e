"""Run every benchmark of issue 6, print one table, write ``bench/RESULTS.md``.

    make bench                  # or: .venv/bin/python -m bench
    .venv/bin/python -m bench --full          # also the 10^6 bulk advance whatever it costs
    .venv/bin/python -m bench --only sweep,report
    .venv/bin/python -m bench --only backlog  # the due backlog of issue 10 alone (~10 min)

Every figure is the median of its repetitions, next to a baseline measured in the same run,
and their ratio. Each measurement runs in a fresh process (``bench.worker``) so its peak RSS is
its own. Databases come from ``bench/.cache/`` (generated on first use, see ``bench.data``).
The suite keeps to a time budget (``--budget``, default 600 s for the whole run): the 10^6
bulk advance, by far the longest, runs last and only if its predicted time (from the 10^5 run)
fits in what is left; the results say when it was skipped and why. The due backlog (item 9,
issue 10: claiming from 10^6 due rows, draining 10^5 due rows to .eml files) runs after it,
outside the budget (its 10^5 drain alone takes several minutes).

A run of some sections only (``--only``) updates their rows in ``bench/RESULTS.md`` and keeps
the others from the last run, saying so in the file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import data

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS.md"
FINDINGS = HERE / "FINDINGS.md"
WORK = data.CACHE / "work"
PY = sys.executable
VENV_BIN = Path(sys.executable).parent
ONBOARDING = str(VENV_BIN / "onboarding")
#: "Now" for the national databases: after their two years of history.
NATIONAL_NOW = "2022-06-01T12:00:00"
SECTIONS = ("shape", "cli", "sweep", "report", "delivery", "peers", "bulk", "backlog", "single")


#: The environment of every ``track advance`` process the bench times.
ADVANCE_ENV = {"ONBOARDING_NOW": data.ADVANCE_AT, "ONBOARDING_ACTOR": data.ACTOR}


def _advance_argv(track: int, path: Path) -> list[str]:
    """``onboarding track advance`` of one fresh connection track (agree_date), as timed."""
    return [
        ONBOARDING, "track", "advance", str(track), "agree_date",
        "--set", f"connection_date={data.CONNECTION_DATE}",
        "--role", "municipality-pl", "--db", str(path),
    ]  # fmt: skip


def sz(n: int) -> str:
    exp = len(str(n)) - 1
    return f"10^{exp}" if n == 10**exp else f"{n:,}"


@dataclass
class Row:
    item: str
    what: str
    size: str
    median: float | None
    base: str = ""
    base_median: float | None = None
    rss_kb: int | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""
    ratio_override: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.ratio_override is not None:
            return self.ratio_override
        if self.median is None or not self.base_median:
            return None
        return self.median / self.base_median


@dataclass
class Suite:
    full: bool = False
    budget: float = 600.0
    only: tuple[str, ...] = SECTIONS
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    generated: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    load_start: tuple[float, float, float] = field(default_factory=os.getloadavg)

    # --- plumbing -----------------------------------------------------------------------------

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def log(self, text: str) -> None:
        print(f"[{self.elapsed():6.1f}s] {text}", file=sys.stderr, flush=True)

    def db(self, kind: str, n: int) -> Path:
        """A cached database, generated in a child process (this one stays small: a child's
        peak-RSS accounting starts from its parent's size)."""
        path = data.CACHE / f"{kind}-{n}-{data.fingerprint()}.db"
        if path.exists():
            return path
        proc = subprocess.run(
            [PY, "-m", "bench.data", kind, str(n)],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"generating {kind} {n} failed:\n{proc.stderr[-3000:]}")
        for line in proc.stderr.strip().splitlines():
            self.generated.append(line)
            self.log(line)
        return Path(proc.stdout.strip().splitlines()[-1])

    def copy(self, kind: str, n: int, name: str) -> Path:
        WORK.mkdir(parents=True, exist_ok=True)
        return data.copy(self.db(kind, n), WORK / name)

    def work(self, case: str, **args: Any) -> dict[str, Any]:
        args = {k: str(v) if isinstance(v, Path) else v for k, v in args.items()}
        proc = subprocess.run(
            [PY, "-m", "bench.worker", case, json.dumps(args)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=self.env(),
        )
        if proc.returncode != 0:
            raise RuntimeError(f"worker {case} {args} failed:\n{proc.stderr[-3000:]}")
        out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return out

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARDING_")}
        env["PYTHONPATH"] = str(ROOT)
        # The bench's own compiled catalogues: the user's cache folder holds one copy per
        # language, which another checkout's different .po replaces (then a command compiles
        # it again with Babel, ~100 ms, and the start-up rows would measure that).
        env["ONBOARDING_CACHE_DIR"] = str(data.CACHE / "i18n")
        env.update(extra)
        return env

    def proc(self, argv: list[str], **env: str) -> tuple[float, int]:
        """Wall time and peak RSS (KiB) of one process, start to exit, measured by a small
        launcher that forks it (so the peak is the process's own, see ``db``)."""
        out = subprocess.run(
            [PY, "-S", "-c", LAUNCHER, *argv],
            cwd=ROOT,
            env=self.env(**env),
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {out.stderr[-2000:]}")
        seconds, rss = out.stdout.split()
        return float(seconds), int(rss)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        r = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
        med = fmt_s(row.median)
        self.log(f"{row.item} | {row.what} | {row.size} | {med} | {r} | {row.note}")
        return row

    # --- 0. the generated rows are the engine's ------------------------------------------------

    def shape(self) -> None:
        WORK.mkdir(parents=True, exist_ok=True)
        out = self.work("shape", dir=WORK)
        problems = list(out["problems"])
        # The bulk floor writes exactly the rows the engine writes.
        n = 2000
        a, b = self.copy("fresh", n, "shape-a.db"), self.copy("fresh", n, "shape-b.db")
        self.work("bulk", db=a, n=n)
        self.work("bulk_floor", db=b, n=n)
        ca, cb = sqlite3.connect(a), sqlite3.connect(b)
        for table in ("tracks", "history", "outbox", "outbox_plan", "audit_head"):
            sql = f"SELECT * FROM {table} ORDER BY 1"
            if ca.execute(sql).fetchall() != cb.execute(sql).fetchall():
                problems.append(f"the bulk floor's {table} rows differ from the engine's")
        ca.close()
        cb.close()
        data.remove(a)
        data.remove(b)
        if problems:
            raise RuntimeError("shape check failed: " + "; ".join(problems))
        self.notes.append(
            "Shape check passed: a database built through the engine (`engine.start`) and one "
            "generated by `bench.data` have identical tracks, history (with hash chain), outbox, "
            "contracts, systems and contacts rows; every generated national track equals the "
            "replay of its history (`tracks.replay`); the generated hash chain passes "
            "`audit.verify`; and the bulk floor writes exactly the rows the engine's bulk advance "
            "writes (compared table by table at 2,000 tracks)."
        )

    # --- 2 and 3. processes -----------------------------------------------------------------------

    def cli(self) -> None:
        """Items 2 and 3 (issue 14's targets): each command as a process, start to exit, next
        to ``python -c pass`` run just before it (the baseline of the same moment)."""
        # As a user's installed copy runs: from bytecode. With PYTHONDONTWRITEBYTECODE set (as
        # in some shells here) nothing would be cached and every run would compile our modules.
        subprocess.run(
            [PY, "-m", "compileall", "-q", "onboarding", "workflows", "notifications", "cli.py"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        bare = [PY, "-c", "pass"]
        nat = self.db("national", 10**6)
        shown = 10**6 // 2  # a track in the middle of the national table
        reps = 11
        base: list[tuple[float, int]] = []
        clicks, helps, english, shows, jsons = [], [], [], [], []
        # The same commands by click (the fast path off): what the fast path saves.
        helps_click, jsons_click = [], []
        click_only = {"ONBOARDING_CLICK_ONLY": "1"}
        for lang in ("da", "en"):  # compiled once, as on a user's machine after the first run
            self.proc([ONBOARDING, "--help"], ONBOARDING_LANG=lang)
        for _ in range(reps):
            base.append(self.proc(bare))
            clicks.append(self.proc([PY, "-c", "import click"]))
            helps.append(self.proc([ONBOARDING, "--help"]))
            english.append(self.proc([ONBOARDING, "--help"], ONBOARDING_LANG="en"))
            helps_click.append(self.proc([ONBOARDING, "--help"], **click_only))
            show = [ONBOARDING, "track", "show", str(shown), "--db", str(nat)]
            shows.append(self.proc(show, ONBOARDING_NOW=NATIONAL_NOW))
            jsons.append(self.proc([*show, "--json"], ONBOARDING_NOW=NATIONAL_NOW))
            jsons_click.append(
                self.proc([*show, "--json"], ONBOARDING_NOW=NATIONAL_NOW, **click_only)
            )
        b = med([t for t, _ in base])
        self.add(
            Row(
                "2/3 start",
                "python -c pass (the baseline)",
                "-",
                b,
                "itself",
                b,
                max_rss(base),
                "",
                None,
            )
        )
        for what, runs, size, target in (
            ("floor: python -c 'import click' (any click command)", clicks, "-", "(floor)"),
            ("onboarding --help (Danish, the default)", helps, "-", 2.0),
            ("onboarding --help, ONBOARDING_LANG=en", english, "-", "(reported)"),
            ("onboarding --help (Danish), by click", helps_click, "-", "(reported)"),
            ("onboarding track show --json", jsons, "10^6 tracks", 2.5),
            (
                "onboarding track show --json, by click (fast path off)",
                jsons_click,
                "10^6 tracks",
                "(reported)",
            ),
            ("onboarding track show", shows, "10^6 tracks", "(reported)"),
        ):
            m = med([t for t, _ in runs])
            self.add(
                Row(
                    "3 CLI start",
                    what,
                    size,
                    m,
                    "python -c pass",
                    b,
                    max_rss(runs),
                    f"<= {target:g}x python -c pass" if isinstance(target, float) else target,
                    (m <= target * b) if isinstance(target, float) else None,
                )
            )
        # 2. one advance, end to end as a process, at growing table sizes
        for n in (10**3, 10**4, 10**5):
            path = self.copy("fresh", n, f"single-{n}.db")
            first = (
                sqlite3.connect(path)
                .execute("SELECT min(id) FROM tracks WHERE definition = 'connection'")
                .fetchone()[0]
            )
            runs, base, floor, click_floor, by_click = [], [], [], [], []
            for i in range(7):
                base.append(self.proc(bare))
                floor.append(self.proc([PY, "-c", COMMIT_FLOOR, str(path), str(first + 7 + i)]))
                click_floor.append(
                    self.proc(
                        [PY, "-c", "import click\n" + COMMIT_FLOOR, str(path), str(first + 14 + i)]
                    )
                )
                runs.append(self.proc(_advance_argv(first + i, path), **ADVANCE_ENV))
                click_only = {**ADVANCE_ENV, "ONBOARDING_CLICK_ONLY": "1"}
                by_click.append(self.proc(_advance_argv(first + 21 + i, path), **click_only))
            data.remove(path)
            m, bm = med([t for t, _ in runs]), med([t for t, _ in base])
            for what, times, kind in (
                ("floor: raw sqlite3 process, state + history row, one commit", floor, "(floor)"),
                (
                    "floor: the same after 'import click' (any click command)",
                    click_floor,
                    "(floor)",
                ),
                ("onboarding track advance, by click (fast path off)", by_click, "(reported)"),
            ):
                self.add(
                    Row(
                        "2 single advance",
                        what,
                        f"{sz(n)} tracks",
                        med([t for t, _ in times]),
                        "python -c pass",
                        bm,
                        max_rss(times),
                        kind,
                        None,
                    )
                )
            self.add(
                Row(
                    "2 single advance",
                    "onboarding track advance (process)",
                    f"{sz(n)} tracks",
                    m,
                    "python -c pass",
                    bm,
                    max_rss(runs),
                    "<= 2.5x python -c pass",
                    m <= 2.5 * bm,
                )
            )
        self.advance_rss()

    def advance_rss(self) -> None:
        """Issue 14: peak RSS of one ``onboarding track advance`` against a raw Python process
        (sqlite3 only) making the same commit, taken from the database (``bench/rss.py``)."""
        import json as _json

        from bench import rss

        n = 10**4
        ours, raw = [], []
        statements = WORK / "advance-commit.json"
        for i in range(7):
            path = self.copy("fresh", n, "rss-ours.db")
            track = (
                sqlite3.connect(path)
                .execute("SELECT min(id) FROM tracks WHERE definition = 'connection'")
                .fetchone()[0]
                + i
            )
            before = rss.snapshot(path)
            ours.append(self.proc(_advance_argv(track, path), **ADVANCE_ENV))
            commit = rss.commit_of(before, rss.snapshot(path))
            statements.write_text(_json.dumps(commit), encoding="utf-8")
            data.remove(path)
            path = self.copy("fresh", n, "rss-raw.db")
            raw.append(self.proc([PY, "-c", rss.RAW_COMMIT, str(path), str(statements)]))
            data.remove(path)
        statements.unlink(missing_ok=True)
        b = float(statistics.median([kb for _, kb in raw]))
        m = float(statistics.median([kb for _, kb in ours]))
        self.add(
            Row(
                "2 advance memory",
                "onboarding track advance (process), peak RSS",
                f"{sz(n)} tracks",
                None,
                "raw python, same commit",
                None,
                int(m),
                "<= 1.5x raw python",
                m <= 1.5 * b,
                note=(
                    f"{m / 1024:.1f} MiB vs {b / 1024:.1f} MiB (median of 7; the raw process"
                    f" runs the {len(commit)} statements of the command's commit)"
                ),
                ratio_override=m / b,
            )
        )

    # --- 4. due sweep -----------------------------------------------------------------------------

    def sweep(self) -> None:
        first: Row | None = None
        for n in (10**3, 10**4, 10**5, 10**6):
            path = self.copy("sweep", n, f"sweep-{n}.db")
            out = self.work("sweep", db=path, reps=30)
            data.remove(path)
            m = med(out["times"])
            plan = "; ".join(out["plan"])
            if first is None:
                first = self.add(
                    Row(
                        "4 due sweep",
                        "claim 50 due rows (outbox.claim)",
                        f"{sz(n)} pending",
                        m,
                        "10^3 pending",
                        m,
                        out["rss_peak"],
                        "",
                        None,
                        note=f"plan: {plan}",
                    )
                )
                continue
            self.add(
                Row(
                    "4 due sweep",
                    "claim 50 due rows (outbox.claim)",
                    f"{sz(n)} pending",
                    m,
                    "10^3 pending",
                    first.median,
                    out["rss_peak"],
                    "<= 2x the 10^3 time" if n == 10**6 else "",
                    (m <= 2 * (first.median or 0)) if n == 10**6 else None,
                    note=f"next_due {fmt_s(med(out['wake']))}; plan: {plan}",
                )
            )

    # --- 9. a due backlog (issue 10) --------------------------------------------------------------

    def backlog(self) -> None:
        """A sender catching up, every row due: one claim (50 rows) must cost the batch, not the
        backlog; draining the backlog must cost the same per message at any size."""
        first: Row | None = None
        for n in (10**3, 10**6):
            path = self.copy("due", n, f"due-{n}.db")
            out = self.work("sweep", db=path, reps=30)
            data.remove(path)
            if out["due"] != n:
                raise RuntimeError(f"{out['due']} of {n} rows due")
            m = med(out["times"])
            base = first.median if first else m
            row = self.add(
                Row(
                    "9 due backlog",
                    "claim 50 of the due rows (outbox.claim)",
                    f"{sz(n)} due",
                    m,
                    "10^3 due",
                    base,
                    out["rss_peak"],
                    "<= 2x the 10^3 time" if first else "",
                    (m <= 2 * (base or 0)) if first else None,
                    note=f"then superseding in the batch {fmt_s(med(out['supersede']))}; "
                    f"plan: {'; '.join(out['plan'])}",
                )
            )
            first = first or row
        first = None
        for n in (10**3, 10**5):
            path = WORK / f"drain-{n}.db"
            folder = WORK / f"drain-{n}-eml"
            reps = 3 if n < 10**5 else 1
            runs = []
            for _ in range(reps):
                self.copy("due", n, path.name)
                shutil.rmtree(folder, ignore_errors=True)
                runs.append(self.work("drain", db=path, out=folder))
            shutil.rmtree(folder, ignore_errors=True)
            data.remove(path)
            seconds = med([r["times"][0] for r in runs])
            per = seconds / runs[0]["messages"]
            base = first.median if first else per
            row = self.add(
                Row(
                    "9 due backlog",
                    "drain to .eml (send-due: claim, supersede, render, write, record), "
                    "time per message",
                    f"{sz(n)} due rows",
                    per,
                    "10^3 due rows",
                    base,
                    max(r["rss_peak"] for r in runs),
                    "<= 1.5x per message at 10^3" if first else "",
                    (per <= 1.5 * (base or 0)) if first else None,
                    note=f"{runs[0]['messages']:,} messages and {runs[0]['superseded']:,} rows "
                    f"superseded in {fmt_s(seconds)}"
                    + (f", median of {reps} runs" if reps > 1 else ""),
                )
            )
            first = first or row

    # --- 6. reports -------------------------------------------------------------------------------

    def report(self) -> None:
        for n in (10**3, 10**4, 10**5, 10**6):
            path = self.db("national", n)
            reps = 5 if n < 10**6 else 2
            eng = self.work("report", db=path, reps=reps, now=NATIONAL_NOW)
            flo = self.work("report_floor", db=path, reps=reps, now=NATIONAL_NOW)
            if eng["totals"] != flo["totals"]:
                raise RuntimeError(f"report totals differ: {eng['totals']} vs {flo['totals']}")
            m = med(eng["times"])
            big = n == 10**6
            self.add(
                Row(
                    "6 report",
                    "report rollout (library call + text)",
                    f"{sz(n)} tracks",
                    m,
                    "one SQL statement",
                    med(flo["times"]),
                    eng["rss_peak"],
                    "< 1 s" if big else "",
                    (m < 1.0) if big else None,
                )
            )
        for n in (10**3, 10**4, 10**5, 10**6):
            path = self.db("national", n)
            reps = 5 if n < 10**6 else 1  # 10^7 history rows: one run (the budget)
            day = data.AS_OF.isoformat()
            eng = self.work("report", db=path, reps=reps, as_of=day, now=NATIONAL_NOW)
            flo = self.work("report_floor", db=path, reps=reps, as_of=day, now=NATIONAL_NOW)
            if eng["totals"] != flo["totals"]:
                raise RuntimeError(f"as-of totals differ: {eng['totals']} vs {flo['totals']}")
            m = med(eng["times"])
            big = n == 10**6
            self.add(
                Row(
                    "6 report",
                    f"report rollout --as-of {day}",
                    f"{sz(n * data.HISTORY_ROWS)} history rows",
                    m,
                    "one SQL statement",
                    med(flo["times"]),
                    eng["rss_peak"],
                    "< 5 s" if big else "",
                    (m < 5.0) if big else None,
                )
            )
        nat = self.db("national", 10**6)
        runs = [
            self.proc(
                [ONBOARDING, "report", "rollout", "--db", str(nat)], ONBOARDING_NOW=NATIONAL_NOW
            )
            for _ in range(2)
        ]
        self.add(
            Row(
                "6 report",
                "onboarding report rollout (process)",
                "10^6 tracks",
                med([t for t, _ in runs]),
                "",
                None,
                max_rss(runs),
                "",
                None,
            )
        )
        self.designs()

    def designs(self) -> None:
        """Issue 14: the covering index, the per-state summary and the counts kept per system
        and bucket (``bench/designs.py``): what today's report reads at 10^6 tracks, and what
        each costs a single advance that stays in its bucket and one that moves to the next."""
        from bench.designs import VARIANTS

        labels = {
            "none": "neither (full scan of the track rows, the schema before 012)",
            "index": "covering index tracks_rollout",
            "summary": "per-state summary kept by triggers (012)",
            "kept": "counts per system and bucket kept by triggers (013, kept)",
        }
        path = self.copy("national", 10**6, "design-read.db")
        read = self.work("design_read", db=path, now=NATIONAL_NOW)
        data.remove(path)
        base = med(read["none"])
        for v in VARIANTS:
            self.add(
                Row(
                    "6 report design",
                    f"report's read: {labels[v]}",
                    "10^6 tracks",
                    med(read[v]),
                    "neither",
                    base,
                    read["rss_peak"],
                    note="index built in " + fmt_s(read[f"setup_{v}"]) if v == "index" else "",
                )
            )
        dbs = {v: str(self.copy("fresh", 10**4, f"design-{v}.db")) for v in VARIANTS}
        write = self.work("design_write", dbs=dbs, rounds=5, per=200)
        ranks = dict(
            sqlite3.connect(dbs["kept"]).execute(
                "SELECT state, rank FROM rollout_rank WHERE definition = 'connection'"
                " AND def_version = 1"
            )
        )
        for p in dbs.values():
            data.remove(p)
        kinds = {
            "same": "agree_date, bucket unchanged",
            "moves": "approve_agreements, to the next bucket",
        }
        for kind, what in kinds.items():
            base = med(write[f"none:{kind}"])
            for v in VARIANTS:
                m = med(write[f"{v}:{kind}"])
                self.add(
                    Row(
                        "6 write cost",
                        f"single advance, one commit ({what}): {labels[v]}",
                        "10^4 tracks",
                        m,
                        "neither",
                        base,
                        write["rss_peak"],
                        "<= 1.05x neither" if v != "none" else "",
                        (m <= 1.05 * base) if v != "none" else None,
                        note=f"{len(write[f'{v}:{kind}'])} advances, designs taking turns",
                    )
                )
        self._write_cost_over_a_life(write, labels, ranks)

    def _write_cost_over_a_life(
        self, write: dict[str, Any], labels: dict[str, str], ranks: dict[str, int]
    ) -> None:
        """The two kinds of advance weighted as a connection track takes them on its way to
        live (the seven steps of ``bench.peers.STEPS``; a step moves the report's counts when
        it changes the state's rank in the report): the write path's cost over a track's life,
        from the same measurements."""
        from bench.designs import VARIANTS
        from bench.peers import STEPS

        moves = sum(1 for _t, a, b, _f in STEPS if ranks.get(a, 0) != ranks.get(b, 0))
        same = len(STEPS) - moves

        def life(v: str) -> float:
            return same * med(write[f"{v}:same"]) + moves * med(write[f"{v}:moves"])

        base = life("none")
        for v in VARIANTS:
            m = life(v)
            self.add(
                Row(
                    "6 write cost",
                    f"a connection track's {len(STEPS)} steps to live ({same} within a bucket,"
                    f" {moves} to the next; weighted from the rows above): {labels[v]}",
                    "10^4 tracks",
                    m,
                    "neither",
                    base,
                    write["rss_peak"],
                    "<= 1.05x neither" if v != "none" else "",
                    (m <= 1.05 * base) if v != "none" else None,
                )
            )

    # --- 5. delivery ------------------------------------------------------------------------------

    def delivery(self) -> None:
        n = 10**4
        record = WORK / "delivered.jsonl"
        WORK.mkdir(parents=True, exist_ok=True)
        record.unlink(missing_ok=True)
        at = "2021-03-31T12:00:00"  # every reminder due (the escalations are set aside)
        # The engine first, to a server that records what it accepts ...
        with self.sink(record) as port:
            path = self.copy("fresh", n, "deliver.db")
            eng = self.work("deliver", db=path, port=port, at=at, now=at)
            data.remove(path)
        # ... then raw smtplib sends exactly those messages to a fresh server.
        with self.sink(None) as port:
            raw = self.work("deliver_raw", record=record, port=port)
        # ... and with the one commit a message any recording sender needs (the floor).
        with self.sink(None) as port:
            path = self.copy("fresh", n, "deliver-floor.db")
            floor = self.work("deliver_raw", record=record, port=port, db=path)
            data.remove(path)
        record.unlink(missing_ok=True)
        if raw["messages"] != n:
            raise RuntimeError(f"the server recorded {raw['messages']} of {n} messages")
        m, b, f = eng["times"][0], raw["times"][0], floor["times"][0]
        self.add(
            Row(
                "5 delivery",
                "reminders send-due to aiosmtpd (render + send + record)",
                f"{sz(n)} messages",
                m,
                "raw smtplib, the same messages",
                b,
                eng["rss_peak"],
                "<= 2x raw smtplib",
                m <= 2 * b,
                note=(
                    f"{m / n * 1e3:.2f} ms vs {b / n * 1e3:.2f} ms a message; sender CPU"
                    f" {eng['cpu'] / n * 1e3:.2f} ms vs {raw['cpu'] / n * 1e3:.2f} ms a message;"
                    f" floor (raw smtplib + one commit a message) {f / n * 1e3:.2f} ms,"
                    f" {f / b:.2f}x raw, ours {m / f:.2f}x the floor;"
                    f" load average {os.getloadavg()[0]:.1f}"
                ),
            )
        )

    @contextlib.contextmanager
    def sink(self, record: Path | None) -> Iterator[int]:
        """A local aiosmtpd server in its own process; yields its port."""
        argv = [PY, "-m", "bench.smtpsink"] + ([str(record)] if record else [])
        server = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            yield int(server.stdout.readline())
        finally:
            server.communicate("", timeout=120)

    # --- 7. peers ---------------------------------------------------------------------------------

    def peers(self) -> None:
        """Item 7. Each peer in its own process, one after the other. ``raw`` and
        ``transitions`` write their two small tables (as their docs' examples do); ``raw_ours``
        and ``transitions_ours`` write the same state and history rows into our schema (a copy
        of the ``peers`` database: our tables with their indexes and triggers), so the rows
        say apart what our schema costs a commit and what the engine costs on top of it."""
        from bench import peers as peer_cases

        WORK.mkdir(parents=True, exist_ok=True)
        results: dict[tuple[str, str], dict[str, Any]] = {}
        # (mode, instances, rounds): the one-per-advance runs take turns, peer after peer,
        # three times, and each row is the median of its rounds (the machine's load then
        # weighs on every peer alike); the one-per-step runs once (SpiffWorkflow alone ~40 s).
        plan = [("bulk", 10**4, 1), ("single", 10**3, 3)]
        order = ("raw", "raw_ours", "ours", "transitions", "transitions_ours", "spiff")
        for mode, n, rounds in plan:
            for _ in range(rounds):
                for peer in order:
                    path = WORK / f"peer-{peer}.db"
                    data.remove(path)
                    if peer in peer_cases.IN_OUR_SCHEMA:
                        self.copy("peers", data.PEER_SYSTEMS, f"peer-{peer}.db")
                    out = self.work("peer", peer=peer, db=path, n=n, mode=mode)
                    data.remove(path)
                    if (peer, mode) in results:
                        kept = results[(peer, mode)]
                        kept["times"] += out["times"]
                        kept["rss_peak"] = max(kept["rss_peak"], out["rss_peak"])
                    else:
                        results[(peer, mode)] = out
            for peer in order:
                out = results[(peer, mode)]
                per = med(out["times"]) / n
                raw = med(results[("raw", mode)]["times"]) / n
                self.add(
                    Row(
                        "7 peers",
                        f"{PEER_NAMES[peer]}, {MODE_NAMES[mode]}",
                        f"{sz(n)} instances",
                        per,
                        "raw sqlite3, same commits",
                        raw,
                        out["rss_peak"],
                        "",
                        None,
                        note="time per completed instance: a start and 7 steps"
                        + (f", {fmt_s(per / 8)} a transaction" if mode == "single" else "")
                        + (f"; median of {rounds} rounds" if rounds > 1 else ""),
                    )
                )

        sizes = {mode: n for mode, n, _ in plan}

        def per(peer: str, mode: str) -> float:
            return med(results[(peer, mode)]["times"]) / sizes[mode]

        for mode, n, _ in plan:
            self.add(
                Row(
                    "7 peers",
                    f"ours / the state + history floor in our schema, {MODE_NAMES[mode]}",
                    f"{sz(n)} instances",
                    per("ours", mode),
                    "raw sqlite3 in our schema",
                    per("raw_ours", mode),
                    None,
                    "(floor)",
                    None,
                    note=f"our schema's floor is {per('raw_ours', mode) / per('raw', mode):.2f}x"
                    " the peers' two-table floor",
                )
            )
        for mode, n, _ in plan:
            ours, spiff = per("ours", mode), per("spiff", mode)
            self.add(
                Row(
                    "7 peers",
                    f"SpiffWorkflow / ours per completed instance, {MODE_NAMES[mode]}",
                    f"{sz(n)} instances",
                    ours,
                    "SpiffWorkflow",
                    spiff,
                    None,
                    ">= 10x faster",
                    spiff / ours >= 10,
                    ratio_override=spiff / ours,
                    note="ratio = how many times faster ours is; the state + history floor in"
                    f" our schema is {spiff / per('raw_ours', mode):.1f}x faster than"
                    f" SpiffWorkflow, the peers' two-table floor {spiff / per('raw', mode):.1f}x",
                )
            )
        for peer, where in (("transitions", "its two tables"), ("transitions_ours", "our schema")):
            ours, other = per("ours", "single"), per(peer, "single")
            self.add(
                Row(
                    "7 peers",
                    f"pytransitions (Machine per object, state + history rows in {where}) / ours"
                    ", per advance, one transaction per advance",
                    f"{sz(sizes['single'])} instances",
                    ours,
                    "pytransitions",
                    other,
                    None,
                    "> 1x (ours faster)",
                    other / ours > 1,
                    ratio_override=other / ours,
                    note=f"ratio = how many times faster ours is; {fmt_s(ours / 8)} against"
                    f" {fmt_s(other / 8)} a transaction",
                )
            )
        ours_single = per("ours", "single")
        spiff_single = per("spiff", "single")
        ours_bulk = per("ours", "bulk")
        self.add(
            Row(
                "7 peers",
                "SpiffWorkflow as its docs run it (load, complete, save) / "
                "ours as ours is run (track advance --where)",
                "per completed instance",
                ours_bulk,
                "SpiffWorkflow, one at a time",
                spiff_single,
                None,
                ">= 10x faster",
                spiff_single / ours_bulk >= 10,
                ratio_override=spiff_single / ours_bulk,
                note=f"ours one at a time: {fmt_s(ours_single)}",
            )
        )
        # memory at 10^5: pytransitions keeps a machine per object; ours streams
        mem = self.work("peer_memory", n=10**5)
        self.add(
            Row(
                "7 peers",
                "pytransitions, one Machine per object, live objects",
                "10^5 instances",
                mem["times"][0],
                "",
                None,
                mem["rss_peak"],
                "",
                None,
                note="time to build the objects; peak RSS is what they hold",
            )
        )
        self._transitions_rss = mem["rss_peak"]

    # --- 1. bulk advance --------------------------------------------------------------------------

    def bulk(self) -> None:
        sizes = [(10**3, 5), (10**4, 2), (10**5, 1)]
        first_rss = None
        last: tuple[float, float] | None = None
        for n, reps in sizes:
            last = self._bulk_size(n, reps)
            if first_rss is None:
                first_rss = self.rows[-1].rss_kb
        assert last is not None
        left = self.budget - self.elapsed()
        both = 10 * (last[0] + last[1]) * 1.15 + 30  # and copying 2 x 1.9 GB
        engine_only = 10 * last[0] * 1.15 + 15
        if self.full or both < left:
            self._bulk_size(10**6, 1)
        elif engine_only < left:
            self._bulk_size(10**6, 1, floor=False)
            self.notes.append(
                f"At 10^6 only the engine's bulk advance ran (time and peak memory): with the "
                f"floor it would take about {both:.0f} s and {left:.0f} s of the "
                f"{self.budget:.0f} s budget were left. `python -m bench --full` runs both."
            )
        else:
            self.notes.append(
                f"The 10^6 bulk advance was skipped: from the 10^5 run it would take about "
                f"{engine_only:.0f} s (the engine alone), and {left:.0f} s of the "
                f"{self.budget:.0f} s budget were left. Run `python -m bench --full` to include it."
            )
        engine_rows = [
            r for r in self.rows if r.item == "1 bulk advance" and r.what.startswith("engine")
        ]
        if first_rss and len(engine_rows) > 1:
            top = engine_rows[-1]
            self.add(
                Row(
                    "1 bulk advance",
                    "engine peak RSS, largest vs 10^3",
                    top.size,
                    None,
                    "10^3",
                    None,
                    top.rss_kb,
                    "flat in N (<= 1.5x)",
                    (top.rss_kb or 0) <= 1.5 * first_rss,
                    ratio_override=(top.rss_kb or 0) / first_rss,
                )
            )

    def _bulk_size(self, n: int, reps: int, floor: bool = True) -> tuple[float, float]:
        eng, flo, sh = [], [], []
        for _ in range(reps):
            if floor:
                path = self.copy("fresh", n, "bulk.db")
                flo.append(self.work("bulk_floor", db=path, n=n))
                data.remove(path)
                path = self.copy("fresh", n, "bulk.db")
                sh.append(self.work("bulk_floor", db=path, n=n, rows="state"))
                data.remove(path)
            path = self.copy("fresh", n, "bulk.db")
            eng.append(self.work("bulk", db=path, n=n))
            data.remove(path)
        m = med([e["times"][0] for e in eng])
        if not floor:
            self.add(
                Row(
                    "1 bulk advance",
                    "engine: track advance --where (agree_date)",
                    f"{sz(n)} tracks",
                    m,
                    "floor not run (budget)",
                    None,
                    max(e["rss_peak"] for e in eng),
                    "",
                    None,
                    note=f"{n / m:,.0f} tracks/s, {reps} run(s)",
                )
            )
            return m, 0.0
        b = med([f["times"][0] for f in flo])
        b_sh = med([f["times"][0] for f in sh])
        self.add(
            Row(
                "1 bulk advance",
                "floor: raw sqlite3 executemany, state + history row",
                f"{sz(n)} tracks",
                b_sh,
                "",
                None,
                max(f["rss_peak"] for f in sh),
                "",
                None,
                note=f"{n / b_sh:,.0f} tracks/s",
            )
        )
        self.add(
            Row(
                "1 bulk advance",
                "floor: raw sqlite3 executemany, same rows",
                f"{sz(n)} tracks",
                b,
                "",
                None,
                max(f["rss_peak"] for f in flo),
                "",
                None,
                note=f"{n / b:,.0f} tracks/s",
            )
        )
        self.add(
            Row(
                "1 bulk advance",
                "engine: track advance --where (agree_date)",
                f"{sz(n)} tracks",
                m,
                "state + history floor",
                b_sh,
                max(e["rss_peak"] for e in eng),
                "<= 3x state + history floor",
                m <= 3 * b_sh,
                note=f"{m / b:.2f}x the same-rows floor; {n / m:,.0f} tracks/s, {reps} run(s)",
            )
        )
        return m, b

    # --- 1b. single advance in process (issue 14) ------------------------------------------------

    def single(self) -> None:
        """``engine.advance`` one track at a time (one transaction each, as a library call)
        against two floors writing one commit per advance: the same rows as the engine, and
        only the state and one history row. Three disjoint track sets of one copy."""
        k = 2000
        for n in (10**4, 10**6):
            path = self.copy("fresh", n, "single.db")
            path2 = self.copy("fresh", n, "single-floor.db")
            out = self.work("single", db=path, db2=path2, n=n, k=k)
            data.remove(path)
            data.remove(path2)
            m, b_same, b_state = (med(out[key]) for key in ("times", "same", "state"))
            self.add(
                Row(
                    "1b single advance",
                    "floor: raw sqlite3, state + history row, one commit each",
                    f"{sz(n)} tracks",
                    b_state,
                    "",
                    None,
                    None,
                    "",
                    None,
                    note=f"{k} advances interleaved with the engine's, median",
                )
            )
            self.add(
                Row(
                    "1b single advance",
                    "floor: raw sqlite3, same rows, one commit each",
                    f"{sz(n)} tracks",
                    b_same,
                    "state + history floor",
                    b_state,
                    None,
                    "",
                    None,
                    note=f"{k} advances interleaved with the engine's, median",
                )
            )
            self.add(
                Row(
                    "1b single advance",
                    "engine.advance (agree_date), in process",
                    f"{sz(n)} tracks",
                    m,
                    "state + history floor",
                    b_state,
                    out["rss_peak"],
                    "<= 2.5x state + history floor",
                    m <= 2.5 * b_state,
                    note=f"{m / b_same:.2f}x the same-rows floor; {k} advances, median",
                )
            )

    # --- the whole run ----------------------------------------------------------------------------

    def run(self) -> int:
        self.log(f"fingerprint {data.fingerprint()}; work in {WORK}")
        for section in SECTIONS:
            if section in self.only:
                self.log(f"--- {section}")
                self.settle()
                getattr(self, section)()
        shutil.rmtree(WORK, ignore_errors=True)
        self.rss_rows()
        table = self.table()
        print(table)
        if set(self.only) != set(SECTIONS) and RESULTS.exists():
            text = self.partial(RESULTS.read_text(encoding="utf-8"))
        else:
            text = self.markdown(table)
        RESULTS.write_text(text, encoding="utf-8")
        self.log(f"wrote {RESULTS.relative_to(ROOT)}")
        return 0

    def settle(self) -> None:
        """Write out what earlier sections left in the page cache before the next is timed:
        the 10^6 bulk advance leaves about a gigabyte of dirty pages, and the kernel writing
        them back during item 1b (one small commit at a time, right after) was measured as
        part of the advances (a run at 2.48x against 2.24-2.38x quiet)."""
        started = time.perf_counter()
        os.sync()
        took = time.perf_counter() - started
        if took > 0.5:
            self.log(f"sync before the section: {took:.1f} s")

    def rss_rows(self) -> None:
        """8. Peak RSS of each operation at 10^6 (or the size it was measured at)."""
        self.rss_table: list[tuple[str, str, int | None, int | None]] = []

        def pick(item: str, contains: str, size: str) -> None:
            for r in self.rows:
                if r.item == item and contains in r.what and r.size == size:
                    self.rss_table.append((r.what, r.size, r.rss_kb, None))
                    return

        pick("1 bulk advance", "engine", "10^6 tracks")
        pick("1 bulk advance", "floor", "10^6 tracks")
        if not any(r[1] == "10^6 tracks" and "engine" in r[0] for r in self.rss_table):
            pick("1 bulk advance", "engine", "10^5 tracks")
        pick("2 single advance", "track advance", "10^5 tracks")
        pick("3 CLI start", "track show", "10^6 tracks")
        pick("4 due sweep", "claim", "10^6 pending")
        pick("6 report", "report rollout (library", "10^6 tracks")
        pick("6 report", "--as-of", "10^7 history rows")
        pick("6 report", "(process)", "10^6 tracks")
        pick("5 delivery", "send-due", "10^4 messages")
        pick("9 due backlog", "claim", "10^6 due")
        pick("9 due backlog", "drain", "10^5 due rows")
        pick("7 peers", "ours, one transaction per step", "10^4 instances")
        pick("7 peers", "pytransitions, one Machine per object, live", "10^5 instances")

    # --- output -----------------------------------------------------------------------------------

    def table(self) -> str:
        head = [
            "#",
            "measurement",
            "size",
            "median",
            "baseline",
            "baseline median",
            "ratio",
            "peak RSS",
            "target",
            "met",
        ]
        lines = [head] + [self._cells(r) for r in self.rows]
        widths = [max(len(str(x[i])) for x in lines) for i in range(len(head))]
        out = []
        for k, line in enumerate(lines):
            out.append(
                "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
            )
            if k == 0:
                out.append("  ".join("-" * w for w in widths))
        return "\n".join(out)

    @staticmethod
    def _cells(r: Row) -> list[str]:
        """A row of the plain-text table."""
        return [
            r.item.split()[0],
            r.what if len(r.item.split()) < 2 else f"{' '.join(r.item.split()[1:])}: {r.what}",
            r.size,
            fmt_s(r.median),
            r.base,
            fmt_s(r.base_median),
            f"{r.ratio:.2f}x" if r.ratio is not None else "",
            fmt_mb(r.rss_kb),
            r.target,
            {True: "yes", False: "NO", None: ""}[r.met],
        ]

    @staticmethod
    def _md_row(r: Row) -> str:
        """A row of the markdown results table."""
        return (
            "| "
            + " | ".join(
                [
                    r.item.split()[0],
                    f"{' '.join(r.item.split()[1:])}: {r.what}"
                    + (f" ({r.note})" if r.note else ""),
                    r.size,
                    fmt_s(r.median),
                    r.base,
                    fmt_s(r.base_median),
                    f"{r.ratio:.2f}x" if r.ratio is not None else "",
                    fmt_mb(r.rss_kb),
                    r.target,
                    {True: "yes", False: "**no**", None: ""}[r.met],
                ]
            )
            .replace("|", "\\|")
            .replace(" \\| ", " | ")
            + " |"
        )

    def partial(self, old: str) -> str:
        """RESULTS.md for a run of some sections: ``old`` with this run's rows in place."""
        fence = old.index("#    measurement")
        dashes = old[fence:].splitlines()[1]
        widths = [len(d) for d in dashes.split("  ")]
        txt = [
            "  ".join(c.ljust(w) for c, w in zip(self._cells(r), widths, strict=True)).rstrip()
            for r in self.rows
        ]
        rss = [f"| {w} | {size} | {fmt_mb(kb)} |" for w, size, kb, _ in self.rss_table]
        items = sorted({r.item.split()[0] for r in self.rows})
        note = (
            f"Item(s) {', '.join(items)} re-measured on {time.strftime('%Y-%m-%d')} by "
            f"`python -m bench --only {','.join(self.only)}` ({self.elapsed():.0f} s, load "
            f"average {fmt_load(self.load_start)} at start, {fmt_load(os.getloadavg())} at "
            "end); every other row is from the run described above."
        )
        text = merge_partial(old, [self._md_row(r) for r in self.rows], txt, rss, note)
        if FINDINGS.exists():  # the findings as they are now, not as they were
            findings = FINDINGS.read_text(encoding="utf-8").rstrip()
            head = findings.splitlines()[0]
            if head in text:
                text = text[: text.index(head)] + findings + "\n"
        return text

    def markdown(self, table: str) -> str:
        m = machine()
        load_end = os.getloadavg()
        md = [
            "# Benchmark results",
            "",
            "Generated by `make bench` (`.venv/bin/python -m bench`); do not edit by hand: the "
            "findings and before/after records at the end come from `bench/FINDINGS.md`.",
            "",
            "## Machine",
            "",
            f"- CPU: {m['cpu']} ({m['cores']} cores), {m['memory']} memory",
            f"- OS: {m['os']}",
            f"- Python {m['python']}, SQLite {m['sqlite']}",
            f"- Packages: {m['packages']}",
            f"- Load average at start {fmt_load(self.load_start)}, at end {fmt_load(load_end)} "
            "(other work on the machine shows here)",
            f"- Run took {self.elapsed():.0f} s"
            + (
                f"; databases generated first: {'; '.join(self.generated)}"
                if self.generated
                else " (databases from the cache)"
            ),
            "",
            "## Results",
            "",
            "Times are medians. `ratio` = median / baseline median (lower is better), except the "
            "SpiffWorkflow rows where it says how many times faster ours is. RSS is the peak "
            "resident set of the measuring process (MiB).",
            "",
        ]
        head = [
            "#",
            "measurement",
            "size",
            "median",
            "baseline",
            "baseline median",
            "ratio",
            "peak RSS",
            "target",
            "met",
        ]
        md.append("| " + " | ".join(head) + " |")
        md.append("|" + "|".join("---" for _ in head) + "|")
        for r in self.rows:
            md.append(self._md_row(r))
        md += [
            "",
            "## 8. Peak memory of each operation at 10^6",
            "",
            "| operation | size | peak RSS |",
            "|---|---|---|",
        ]
        for what, size, rss, _ in getattr(self, "rss_table", []):
            md.append(f"| {what} | {size} | {fmt_mb(rss)} |")
        md += ["", "## Notes from this run", ""]
        md += [f"- {n}" for n in self.notes] or ["- (none)"]
        md += ["", "## Plain-text table (as printed)", "", "```", table, "```", ""]
        if FINDINGS.exists():
            md += [FINDINGS.read_text(encoding="utf-8").rstrip(), ""]
        return "\n".join(md)


# --- a run of some sections: update their rows, keep the rest ------------------------------------


def merge_partial(
    old: str, rows_md: list[str], rows_txt: list[str], rss_md: list[str], note: str
) -> str:
    """``old`` (a RESULTS.md) with the rows of the items in ``rows_md`` (results table) and
    ``rows_txt`` (the plain-text copy) replaced by these, the peak-memory lines ``rss_md``
    replaced or added, and ``note`` added to the machine and notes lists."""
    items = {_first_cell(r) for r in rows_md}
    lines = old.splitlines()
    lines = _replace_rows(lines, "| # | measurement", rows_md, lambda ln: _first_cell(ln) in items)
    lines = _replace_rows(
        lines, "#    measurement", rows_txt, lambda ln: ln.split(" ", 1)[0] in items, fenced=True
    )
    keys = {r.rsplit(" | ", 1)[0] for r in rss_md}
    lines = _replace_rows(
        lines, "| operation | size", rss_md, lambda ln: ln.rsplit(" | ", 1)[0] in keys
    )
    stale = "- " + note.split(" re-measured ")[0] + " re-measured "
    lines = [ln for ln in lines if not ln.startswith(stale)]  # from an earlier such run
    for heading in ("## Machine", "## Notes from this run"):
        at = lines.index(heading) + 2
        while at < len(lines) and lines[at].startswith("- "):
            at += 1
        lines.insert(at, f"- {note}")
    return "\n".join(lines) + "\n"


def _first_cell(line: str) -> str:
    return line.strip("|").split("|", 1)[0].strip()


def _replace_rows(
    lines: list[str], head: str, new: list[str], old_row: Any, fenced: bool = False
) -> list[str]:
    """The table starting with the line ``head``: its rows for which ``old_row`` holds are
    replaced by ``new`` (in their place, else at the table's end)."""
    start = next(i for i, ln in enumerate(lines) if ln.startswith(head)) + 2
    end = start
    while end < len(lines) and lines[end].strip() and not (fenced and lines[end] == "```"):
        end += 1
    body = lines[start:end]
    keep = [ln for ln in body if not old_row(ln)]
    at = next((i for i, ln in enumerate(body) if old_row(ln)), None)
    at = len(keep) if at is None else sum(1 for ln in body[:at] if not old_row(ln))
    return lines[:start] + keep[:at] + new + keep[at:] + lines[end:]


#: The least a process can do to record one advance durably, as the engine opens the file
#: (WAL, synchronous=NORMAL, BEGIN IMMEDIATE): move the track (argv[2]), append one history
#: row and move the audit head (what an advance must write), one commit, close (which
#: checkpoints the WAL, as every command's close does). Item 2's floor: what no command line
#: that commits can undercut.
COMMIT_FLOOR = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
for pragma in ("foreign_keys = ON", "busy_timeout = 30000", "journal_mode = WAL",
               "synchronous = NORMAL"):
    conn.execute("PRAGMA " + pragma)
track = int(sys.argv[2])
conn.execute("BEGIN IMMEDIATE")
seq = conn.execute("SELECT max(seq) FROM history WHERE track_id = ?", [track]).fetchone()[0]
last = conn.execute("SELECT last_id FROM audit_head WHERE id = 1").fetchone()[0]
conn.execute(
    "UPDATE tracks SET state = 'service_agreements', version = version + 1,"
    " updated_at = '2021-03-10T10:00:00.000000Z' WHERE id = ?", [track])
conn.execute(
    "INSERT INTO history (id, track_id, seq, from_state, to_state, trigger, actor, role, at,"
    " recorded_at, def_version, fields, hash) VALUES (?, ?, ?, 'date_agreement',"
    " 'service_agreements', 'agree_date', 'bench', 'municipality-pl',"
    " '2021-03-10T10:00:00.000000Z', '2021-03-10T10:00:00.000000Z', 1, '{}', 'floor')",
    [last + 1, track, (seq or 0) + 1])
conn.execute(
    "UPDATE audit_head SET last_id = ?, last_hash = 'floor', rows = rows + 1 WHERE id = 1",
    [last + 1])
conn.execute("COMMIT")
conn.close()
"""

#: Runs argv[1:] as a child with stdout discarded; prints its wall time and peak RSS (KiB).
LAUNCHER = """
import os, sys, time
argv = sys.argv[1:]
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 1)
    try:
        os.execv(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
code = os.waitstatus_to_exitcode(status)
if code:
    sys.exit(f"exit {code}")
print(seconds, usage.ru_maxrss)
"""

PEER_NAMES = {
    "raw": "raw sqlite3 (state + history row)",
    "raw_ours": "raw sqlite3 (state + history row) in our schema",
    "ours": "ours",
    "transitions": "pytransitions, Machine per object",
    "transitions_ours": "pytransitions, Machine per object, state + history in our schema",
    "spiff": "SpiffWorkflow BPMN + serializer",
}
MODE_NAMES = {"bulk": "one transaction per step", "single": "one transaction per advance"}


def med(values: list[float]) -> float:
    return float(statistics.median(values))


def max_rss(runs: list[tuple[float, int]]) -> int:
    return max(r for _, r in runs)


def fmt_s(v: float | None) -> str:
    if v is None:
        return ""
    if v >= 1:
        return f"{v:.2f} s"
    if v >= 1e-3:
        return f"{v * 1e3:.1f} ms"
    return f"{v * 1e6:.0f} us"


def fmt_mb(kb: int | None) -> str:
    return "" if kb is None else f"{kb / 1024:.0f} MiB"


def fmt_load(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.2f}" for x in load)


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    pkgs = []
    for name in ("transitions", "SpiffWorkflow", "sqlite-utils", "Jinja2", "aiosmtpd", "click"):
        with contextlib.suppress(PackageNotFoundError):
            pkgs.append(f"{name} {version(name)}")
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "packages": ", ".join(pkgs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="also the 10^6 bulk advance")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds for the whole run")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"sections to run (default all: {','.join(SECTIONS)})",
    )
    args = parser.parse_args(argv)
    only = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    os.environ["PYTHONPATH"] = str(ROOT)
    return Suite(full=args.full, budget=args.budget, only=only).run()


if __name__ == "__main__":
    raise SystemExit(main())
