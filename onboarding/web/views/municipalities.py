"""One municipality: its tracks and contacts."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from onboarding import definitions, registry, tracks, visibility
from onboarding.errors import NotFound
from onboarding.filters import TrackFilter
from onboarding.web.core import WEB, Page


def municipality_page(page: Page) -> Response:
    code = int(page.request.path_params["code"])
    scope = visibility.of(page.db, page.actor)
    found = [m for m in registry.list_municipalities(page.db) if int(m["code"]) == code]
    if not found:
        raise NotFound("municipality", str(code))
    visibility.require_municipality(page.db, scope, code)  # 404 outside the scope, as unknown
    m = found[0]
    rows = tracks.list_tracks(page.db, TrackFilter(municipality=str(code), scope=scope))
    by_def: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_def.setdefault(r["definition"], []).append(r)
    contracts = [
        c for c in registry.list_contracts(page.db, scope) if c["municipality_code"] == code
    ]
    contacts = [c for c in registry.list_contacts(page.db, scope) if c["municipality_code"] == code]
    klik_tasks = registry.list_klik_tasks(page.db)
    klik_rows = {}
    for t in tracks.iter_tracks(
        page.db, TrackFilter(municipality=str(code), definition="klik-task", scope=scope)
    ):
        klik_rows[t["klik_task_id"]] = t
    klik_view = []
    for task in klik_tasks:
        kt = klik_rows.get(task["id"])
        entry: dict[str, Any] = {"task": task, "track": None}
        if kt is not None:
            defn = definitions.get(page.db, kt["definition"], kt["def_version"])
            st = defn.state(kt["state"])
            entry.update(track=kt, label=st.label, bucket=st.bucket, final=st.final)
        klik_view.append(entry)
    waves = {str(w["code"]).upper(): w for w in registry.list_waves(page.db)}
    wave_view = []
    for t in tracks.iter_tracks(
        page.db, TrackFilter(municipality=str(code), definition="rollout-wave", scope=scope)
    ):
        defn = definitions.get(page.db, t["definition"], t["def_version"])
        code_ = str(t["fields"].get("wave") or "").upper()
        wave_view.append(
            {"track": t, "label": defn.state(t["state"]).label, "wave": waves.get(code_)}
        )
    return WEB(page).render(
        page,
        "municipality.html",
        m=m,
        connections=by_def.pop("connection", []),
        other_tracks=[
            r
            for d, rs in sorted(by_def.items())
            if d not in ("klik-task", "rollout-wave")
            for r in rs
        ],
        contracts=contracts,
        contacts=contacts,
        klik=klik_view,
        waves=wave_view,
    )
