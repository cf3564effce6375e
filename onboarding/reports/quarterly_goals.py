"""The quarterly goals: a goals file (``data/goals-YEAR.yaml``) read and checked, each goal's
targets against the actual number at its quarter's end, and the counters the tool cannot
derive, recorded by ``record_counter`` (append-only); with the goals report's text.
Its own module because the rollout chart's targets (``progress``) and the HTML report
(``exports``) read the same files and targets.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from onboarding import clock, i18n
from onboarding.db import Database, immediate
from onboarding.errors import InputError, NotFound
from onboarding.i18n import Message
from onboarding.reports.asof import _Defs, _end_stamp, _rows, _states_as_of, _today
from onboarding.reports.text import _danish, _lang, _num, _say, _table

#: onboarding/data: the package's parent holds it, beside the registry's shipped files.
DATA = Path(__file__).parents[1] / "data"
QUARTER_ENDS = {1: (3, 31), 2: (6, 30), 3: (9, 30), 4: (12, 31)}


def goals_file(year: int) -> Path | None:
    """The shipped goals file for a year (``data/goals-YEAR.yaml``), if there is one."""
    path = DATA / f"goals-{year}.yaml"
    return path if path.exists() else None


def _shipped_counters() -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(DATA.glob("goals-*.yaml")):
        out.update(load_goals(path)["counters"])
    return out


def load_goals(path: str | Path) -> dict[str, Any]:
    """Read and check a goals file; targets become ``{"Q1": {"value": .., "label": ..}}``."""
    import yaml  # here: only the goals reports read a goals file

    try:
        spec = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(
            Message(
                "%(path)s: cannot read goals: %(reason)s", {"path": str(path), "reason": str(exc)}
            )
        ) from None
    problems: list[str] = []
    if not isinstance(spec, dict) or not isinstance(spec.get("year"), int):
        raise InputError(
            Message(
                "%(path)s: a goals file needs 'year' (a number) and 'goals' (a list)",
                {"path": str(path)},
            )
        )
    counters = spec.get("counters") or {}
    if not isinstance(counters, dict):
        problems.append(Message("counters: must map counter names to labels"))
        counters = {}
    goal_list = spec.get("goals")
    if not isinstance(goal_list, list):
        raise InputError(Message("%(path)s: 'goals' must be a list", {"path": str(path)}))
    for i, g in enumerate(goal_list):
        where = f"goals[{i}]"
        if not isinstance(g, dict) or not g.get("name") or not g.get("label"):
            problems.append(Message("%(where)s: needs name and label", {"where": where}))
            continue
        where = f"goals[{i}] ({g['name']})"
        m = g.get("measure")
        if not isinstance(m, dict):
            problems.append(Message("%(where)s.measure: missing", {"where": where}))
            continue
        if "counter" in m:
            if m["counter"] not in counters:
                problems.append(
                    Message(
                        "%(where)s.measure.counter: %(counter)s is not in counters",
                        {"where": where, "counter": repr(m["counter"])},
                    )
                )
        else:
            if m.get("count") not in ("municipalities", "systems"):
                problems.append(
                    Message("%(where)s.measure.count: municipalities or systems", {"where": where})
                )
            if not m.get("definition"):
                problems.append(Message("%(where)s.measure.definition: missing", {"where": where}))
            if not (m.get("states") or m.get("buckets")):
                problems.append(
                    Message("%(where)s.measure: give states or buckets", {"where": where})
                )
            if not m.get("categories"):
                problems.append(Message("%(where)s.measure.categories: missing", {"where": where}))
        targets = g.get("targets")
        if not isinstance(targets, dict) or not targets:
            problems.append(
                Message(
                    "%(where)s.targets: map Q1-Q4 to a number, 'all' or {value, label}",
                    {"where": where},
                )
            )
            continue
        norm = {}
        for q, t in targets.items():
            if q not in ("Q1", "Q2", "Q3", "Q4"):
                problems.append(
                    Message("%(where)s.targets.%(q)s: quarters are Q1-Q4", {"where": where, "q": q})
                )
                continue
            value, label = (t.get("value"), t.get("label")) if isinstance(t, dict) else (t, None)
            if not (value == "all" or (isinstance(value, int) and value >= 0)):
                problems.append(
                    Message(
                        "%(where)s.targets.%(q)s: a whole number or 'all'", {"where": where, "q": q}
                    )
                )
            norm[q] = {"value": value, "label": label}
        g["targets"] = dict(sorted(norm.items()))
    if problems:
        raise InputError(
            Message(
                "%(path)s: %(problems)s",
                {"path": str(path), "problems": i18n.Phrases(problems, sep="; ")},
            )
        )
    spec["counters"] = counters
    return spec


def _quarter_end(year: int, quarter: int) -> date:
    m, d = QUARTER_ENDS[quarter]
    return date(year, m, d)


def _target_value(db: Database, goal: Mapping[str, Any], value: Any, day: date) -> int:
    """A target's number; ``all`` counts the uses on record at the end of ``day`` (a contract
    the status import recorded counts from its row's date, as in the rollout report)."""
    if value != "all":
        return int(value)
    m = goal["measure"]
    cats = list(m["categories"])
    marks = ",".join("?" * len(cats))
    on_record = (
        " LEFT JOIN contract_origins o ON o.municipality_code = c.municipality_code"
        f" AND o.system_id = c.system_id WHERE s.category IN ({marks})"
        " AND (o.since IS NULL OR o.since <= ?)"
    )
    params = [*cats, _end_stamp(day)]
    if m["count"] == "municipalities":
        n = db.execute(
            "SELECT count(DISTINCT c.municipality_code) FROM contracts c"
            f" JOIN systems s ON s.id = c.system_id{on_record}",
            params,
        ).fetchone()[0]
        return int(n) or int(db.execute("SELECT count(*) FROM municipalities").fetchone()[0])
    n = db.execute(
        "SELECT count(DISTINCT c.system_id) FROM contracts c"
        f" JOIN systems s ON s.id = c.system_id{on_record}",
        params,
    ).fetchone()[0]
    if n:
        return int(n)
    return int(
        db.execute(f"SELECT count(*) FROM systems WHERE category IN ({marks})", cats).fetchone()[0]
    )


def _measure(db: Database, defs: _Defs, goal: Mapping[str, Any], day: date) -> int | None:
    m = goal["measure"]
    stamp = _end_stamp(day)
    if "counter" in m:
        row = db.execute(
            "SELECT value FROM goal_counters WHERE counter = ? AND at <= ?"
            " ORDER BY at DESC, id DESC LIMIT 1",
            [m["counter"], day.isoformat()],
        ).fetchone()
        return None if row is None else int(row[0])
    cats = set(m["categories"])
    system_cats = {
        int(r[0]): str(r[1]) for r in db.execute("SELECT id, category FROM systems").fetchall()
    }
    states = set(m.get("states") or [])
    buckets = set(m.get("buckets") or [])
    seen = set()
    for t in _states_as_of(db, m["definition"], stamp):
        if system_cats.get(t["system_id"]) not in cats:
            continue
        if m.get("index") and t["index_set"] != m["index"]:
            continue
        st = defs.get(m["definition"], t["def_version"]).state(t["state"])
        if st.name in states or (st.bucket is not None and st.bucket in buckets):
            seen.add(t["municipality_code"] if m["count"] == "municipalities" else t["system_id"])
    return len(seen)


def goals(
    db: Database,
    year: int,
    quarter: int | None = None,
    today: date | None = None,
    path: str | Path | None = None,
) -> dict[str, Any]:
    """Each goal's quarterly targets against the actual number at the quarter's end.

    A quarter not yet ended is measured as of today and is ``open`` (or ``on track`` when the
    target is already reached); an ended one is ``met`` or ``missed``, or ``not recorded`` when
    a counter has no value recorded by then.
    """
    if quarter is not None and quarter not in QUARTER_ENDS:
        raise InputError(
            Message("--quarter %(quarter)s: quarters are 1 to 4", {"quarter": str(quarter)})
        )
    source = Path(path) if path else goals_file(year)
    if source is None:
        shipped = ", ".join(p.stem for p in sorted(DATA.glob("goals-*.yaml")))
        raise NotFound("goals file for year", str(year), [shipped] if shipped else [])
    spec = load_goals(source)
    if spec["year"] != year:
        raise InputError(
            Message(
                "%(path)s: holds the goals of %(year)s, not %(wanted)s",
                {"path": str(source), "year": str(spec["year"]), "wanted": str(year)},
            )
        )
    day = _today(today)
    defs = _Defs(db)
    out = []
    for g in spec["goals"]:
        for q, target in g["targets"].items():
            qn = int(q[1])
            if quarter is not None and qn != quarter:
                continue
            end = _quarter_end(year, qn)
            measured_on = min(end, day)
            actual = _measure(db, defs, g, measured_on)
            value = _target_value(db, g, target["value"], measured_on)
            if actual is None:
                status = "not recorded"
            elif end > day:
                status = "on track" if actual >= value else "open"
            else:
                status = "met" if actual >= value else "missed"
            out.append(
                {
                    "goal": g["name"],
                    "label": g["label"],
                    "quarter": q,
                    "quarter_end": end.isoformat(),
                    "measured_on": measured_on.isoformat(),
                    "target": value,
                    "target_spec": target["value"],
                    "target_label": target["label"],
                    "actual": actual,
                    "status": status,
                }
            )
    out.sort(key=lambda r: (r["quarter"], _goal_index(spec, r["goal"])))
    return {"year": year, "today": day.isoformat(), "file": str(source), "goals": out}


def _goal_index(spec: Mapping[str, Any], name: str) -> int:
    return next(i for i, g in enumerate(spec["goals"]) if g["name"] == name)


def goals_text(report: Mapping[str, Any], lang: str | None = None) -> str:
    lang = _lang(lang)
    day = _danish(report["today"], lang)
    lines = [_say(lang, "Goals %(year)s, as of %(day)s", year=report["year"], day=day), ""]
    rows: list[Sequence[Any] | None] = []
    for r in report["goals"]:
        label = i18n.pgettext(lang, "goal", r["label"])
        if r["target_label"]:
            label += ": " + i18n.pgettext(lang, "goal", r["target_label"])
        actual = "-" if r["actual"] is None else _num(r["actual"], lang)
        status = i18n.pgettext(lang, "status", r["status"])
        rows.append([r["quarter"], label, _num(r["target"], lang), actual, status])
    if not rows:
        lines.append(_say(lang, "(no goals for that quarter)"))
    else:
        headers = [_say(lang, h) for h in ("Quarter", "Goal", "Target", "Actual", "Status")]
        lines += _table(headers, rows, "llrrl")
    return "\n".join(lines) + "\n"


def record_counter(
    db: Database, counter: str, value: int, at: date, actor: str, note: str | None = None
) -> dict[str, Any]:
    """Record a counter the tool cannot derive (append-only; the latest on or before a date
    counts for that date)."""
    known = _shipped_counters()
    if counter not in known:
        close = [k for k in known if counter.casefold() in k] or difflib.get_close_matches(
            counter, list(known), n=3, cutoff=0.4
        )
        raise NotFound("counter", counter, close or sorted(known))
    if value < 0:
        raise InputError(
            Message(
                "counter %(counter)s: %(value)s is negative (a count is 0 or more)",
                {"counter": counter, "value": str(value)},
            )
        )
    if at > _today(None):
        raise InputError(
            Message(
                "--at %(at)s is in the future: now is %(now)s",
                {"at": str(at), "now": clock.show_instant(clock.now())},
            )
        )
    recorded = clock.stamp(clock.now())
    with immediate(db) as conn:
        cur = conn.execute(
            "INSERT INTO goal_counters (counter, value, at, actor, note, recorded_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [counter, value, at.isoformat(), actor, note, recorded],
        )
        row_id = int(cur.lastrowid or 0)
    return {
        "id": row_id,
        "counter": counter,
        "label": known[counter],
        "value": value,
        "at": at.isoformat(),
        "actor": actor,
        "note": note,
    }


def list_counters(db: Database) -> list[dict[str, Any]]:
    """Every counter a shipped goals file names, with each value recorded (oldest first)."""
    out = []
    for name, label in _shipped_counters().items():
        values = _rows(
            db,
            "SELECT value, at, actor, note FROM goal_counters WHERE counter = ? ORDER BY at, id",
            [name],
        )
        out.append({"counter": name, "label": label, "values": values})
    return out
