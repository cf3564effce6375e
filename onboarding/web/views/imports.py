"""Status import: upload, preview, apply."""

from __future__ import annotations

import hashlib
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

from starlette.datastructures import UploadFile
from starlette.responses import Response

from onboarding.errors import InputError, OnboardingError
from onboarding.web import i18n
from onboarding.web.core import WEB, Page, WebState, _grants, _require_role, _status_for
from onboarding.web.i18n import gettext as _

#: The largest status file the import page takes.
MAX_UPLOAD = 5 * 1024 * 1024


IMPORT_ROLES = ("coordinator", "importer")


def _importer(page: Page, path: Path) -> tuple[Any, dict[str, str]]:
    """The logged-in person as the import's actor: in role importer when they hold it for all,
    else in the role that let them import (coordinator); the note names the uploaded file and
    its sha256 digest (accountability: history says who uploaded what). Also what the page
    says about it."""
    from onboarding.status_import import ROLE, Importer, upload_source

    assert page.actor is not None
    for_all = {g.get("role") for g in _grants(page.db, page.actor) if g.get("scope") == "all"}
    role = ROLE if ROLE in for_all else next(r for r in IMPORT_ROLES if r in for_all)
    data = path.read_bytes()
    by = Importer(actor=page.actor, role=role, source=upload_source(path.name, data))
    return by, {"actor": page.actor, "role": role, "digest": hashlib.sha256(data).hexdigest()}


def import_page(page: Page) -> Response:
    return WEB(page).render(page, "import.html", result=None, errors=None)


def _save_upload(state: WebState, upload: UploadFile) -> tuple[str, Path]:
    name = Path(upload.filename or "status.csv").name
    name = re.sub(r"[^\w.\-]+", "_", name)[:100] or "status.csv"
    token = secrets.token_urlsafe(16)
    folder = state.uploads / token
    folder.mkdir(parents=True)
    path = folder / name
    size = 0
    with path.open("wb") as out:
        while chunk := upload.file.read(64 * 1024):
            size += len(chunk)
            if size > MAX_UPLOAD:
                out.close()
                shutil.rmtree(folder, ignore_errors=True)
                raise InputError(
                    _("The file is larger than %(mb)d MB.") % {"mb": MAX_UPLOAD // 2**20}
                )
            out.write(chunk)
    return token, path


def _pending_upload(state: WebState, token: str) -> Path | None:
    if not re.fullmatch(r"[\w\-]{10,40}", token):
        return None
    folder = state.uploads / token
    files = sorted(folder.iterdir()) if folder.is_dir() else []
    return files[0] if files else None


def _file_errors(exc: OnboardingError, path: Path) -> list[str]:
    """The import's messages, naming the uploaded file by its name (not the server's path)."""
    return i18n.say_error(exc).replace(str(path), path.name).splitlines()


def _state_labels(db: Any) -> dict[str, str]:
    """State key -> label over the stored definitions (the import's rows name states of the
    readiness and connection definitions, whose keys do not clash)."""
    from onboarding import definitions

    return {s.name: s.label for d in definitions.stored(db) for s in d.states}


def _import_view(
    result: Any, path: Path, who: dict[str, str], db: Any = None
) -> dict[str, Any]:
    data = result.to_dict()
    labels = _state_labels(db) if db is not None else {}
    changed = [
        {**o, "from": labels.get(o["from"], o["from"]), "to": labels.get(o["to"], o["to"])}
        for o in data["outcomes"]
        if o["outcome"] not in ("unchanged",)
    ]
    return {"summary": data, "changed": changed, "file": path.name, "by": who}


def import_preview(page: Page) -> Response:
    from onboarding.status_import import import_status

    assert page.form is not None
    state = WEB(page)
    _require_role(page, IMPORT_ROLES, "import status files")
    upload = page.form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return state.render(
            page, "import.html", status=422, result=None, errors=[_("Choose a file.")]
        )
    try:
        token, path = _save_upload(state, upload)
    except InputError as exc:
        return state.render(page, "import.html", status=422, result=None, errors=[str(exc)])
    old = page.session.get("import")
    if isinstance(old, str) and old != token and _pending_upload(state, old) is not None:
        shutil.rmtree(state.uploads / old, ignore_errors=True)
    page.session["import"] = token
    by, who = _importer(page, path)
    try:
        result = import_status(page.db, path, dry_run=True, by=by)
    except OnboardingError as exc:
        shutil.rmtree(path.parent, ignore_errors=True)
        page.session.pop("import", None)
        return state.render(
            page,
            "import.html",
            status=_status_for(exc),
            result=None,
            errors=_file_errors(exc, path),
        )
    view = _import_view(result, path, who, page.db)
    return state.render(page, "import.html", result=view, token=token)


def import_apply(page: Page) -> Response:
    from onboarding.status_import import import_status

    state = WEB(page)
    _require_role(page, IMPORT_ROLES, "import status files")
    token = page.field("token")
    path = _pending_upload(state, token) if token == page.session.get("import") else None
    if path is None:
        return state.render(
            page,
            "import.html",
            status=409,
            result=None,
            errors=[_("That preview is no longer available: upload the file again.")],
        )
    by, who = _importer(page, path)
    try:
        result = import_status(page.db, path, by=by)
    except OnboardingError as exc:
        return state.render(
            page,
            "import.html",
            status=_status_for(exc),
            result=None,
            errors=_file_errors(exc, path),
        )
    shutil.rmtree(path.parent, ignore_errors=True)
    page.session.pop("import", None)
    view = _import_view(result, path, who, page.db)
    return state.render(page, "import.html", result=view, applied=True)
