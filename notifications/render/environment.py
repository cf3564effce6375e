"""The one sandboxed Jinja2 environment per templates folder, template lookup, and problems.

Lookup order: a definition version's own templates (``OwnTemplates``), then the configured
templates folder, then the shipped templates; a shipped ``_`` file is never replaced by a
definition's own. ``template_problems`` compiles templates with the same environment that
renders them.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from jinja2 import (
    BaseLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    meta,
    select_autoescape,
)
from jinja2.sandbox import SandboxedEnvironment

from notifications.render.filters import _genitive, _gettext, _line_breaks, _long_date, _ngettext

#: The shipped templates: notifications/templates, beside this package.
PACKAGE_TEMPLATES = Path(__file__).parent.parent / "templates"


@dataclass(frozen=True)
class OwnTemplates:
    """A definition version's own templates, as stored with it (``definition_templates``):
    file path relative to its folder (``da/welcome.txt``) -> text."""

    definition: str
    version: int
    files: Mapping[str, str]

    @cached_property
    def key(self) -> str:
        """Names the environment that serves these files (same files, same environment)."""
        digest = hashlib.sha256()
        for path in sorted(self.files):
            digest.update(f"{path}\0{self.files[path]}\0".encode())
        return f"{self.definition}\0{self.version}\0{digest.hexdigest()}"


def shipped_internal(path: str) -> bool:
    """A shipped ``_``-prefixed file (``da/_macros.txt``, ``_layout.html``): the shared
    pieces every message uses, which a definition's own templates may not replace (the
    override folder, ``[mail] templates``, is the deliberate way to change them)."""
    return (
        path.rpartition("/")[2].startswith("_")
        and PACKAGE_TEMPLATES.joinpath(*path.split("/")).is_file()
    )


class _OverridableLoader(BaseLoader):
    """A definition version's own templates first, then the configured templates folder,
    then the shipped templates.

    A definition's own files never change (they are stored with its version), and never
    stand in for a shipped ``_`` file (``shipped_internal``). A shipped template stays cached
    only while no file of the same name has appeared in the folder since, so an override a
    user adds later is picked up (and one edited or removed too: Jinja2 checks each file's
    modification time)."""

    def __init__(self, folder: Path | None, own: OwnTemplates | None = None) -> None:
        self.folder = folder
        self.own = own
        self.override = FileSystemLoader(str(folder)) if folder is not None else None
        self.package = FileSystemLoader(str(PACKAGE_TEMPLATES))

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        own = self.own
        if own is not None and template in own.files and not shipped_internal(template):
            where = f"{own.definition} v{own.version} (stored): {template}"
            return own.files[template], where, lambda: True
        if self.override is not None:
            try:
                return self.override.get_source(environment, template)
            except TemplateNotFound:
                pass
        source, filename, uptodate = self.package.get_source(environment, template)
        folder = self.folder
        if folder is None:
            return source, filename, uptodate
        shadow = folder.joinpath(*template.split("/"))

        def fresh() -> bool:
            return not shadow.exists() and (uptodate is None or uptodate())

        return source, filename, fresh


#: One environment per templates folder and definition version's own templates, kept for the
#: life of the process: compiled templates are reused by every ``Renderer`` (``send_due`` makes
#: one per run, the scheduler one per sweep, the demo one per simulated day) instead of
#: compiled again each time.
_ENVIRONMENTS: dict[tuple[str | None, str | None], SandboxedEnvironment] = {}
_ENVIRONMENTS_LOCK = threading.Lock()


def _environment(folder: Path | None, own: OwnTemplates | None = None) -> SandboxedEnvironment:
    key = (str(folder) if folder is not None else None, own.key if own is not None else None)
    with _ENVIRONMENTS_LOCK:
        env = _ENVIRONMENTS.get(key)
        if env is None:
            env = SandboxedEnvironment(
                loader=_OverridableLoader(folder, own),
                autoescape=select_autoescape(enabled_extensions=("html",), default=False),
                undefined=StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
                keep_trailing_newline=True,
                extensions=["jinja2.ext.i18n"],
            )
            # gettext/ngettext of the project's catalogue in the language of the message being
            # rendered (``_LANGUAGE``): "1 arbejdsdag", "2 arbejdsdage".
            env.install_gettext_callables(  # type: ignore[attr-defined]
                _gettext, _ngettext, newstyle=True
            )
            env.filters["long_date"] = _long_date
            env.filters["genitive"] = _genitive
            env.filters["lines"] = _line_breaks
            _ENVIRONMENTS[key] = env
        return env


def template_problems(files: Mapping[str, str]) -> list[str]:
    """Each file that does not compile as a template (``da/welcome.txt: line 3: ...``),
    compiled by the same sandboxed environment that renders messages, or that extends,
    includes or imports a template that is neither among ``files`` nor shipped."""
    env = _environment(None)
    problems: list[str] = []
    for path in sorted(files):
        try:
            tree = env.parse(files[path], path.rpartition("/")[2], path)
        except TemplateSyntaxError as exc:
            problems.append(f"{path}: line {exc.lineno}: {exc.message}")
            continue
        for ref in meta.find_referenced_templates(tree):
            if ref is None:
                continue  # a name computed at render time: found (or not) then
            if ref not in files and not PACKAGE_TEMPLATES.joinpath(*ref.split("/")).is_file():
                problems.append(f"{path}: uses {ref!r}, which is neither beside it nor shipped")
    return problems
