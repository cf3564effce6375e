"""The Jinja2 side: one sandboxed environment per templates folder, lookup, problems, Renderer.

Lookup order: a definition version's own templates (``OwnTemplates``), then the configured
templates folder, then the shipped templates; a shipped ``_`` file is never replaced by a
definition's own. ``template_problems`` compiles templates with the same environment that
renders them. The filters (``long_date``, ``genitive``, ``lines``) and the catalogue's
gettext/ngettext read the message's language from a context variable set per render, so one
environment serves every language. A ``Renderer`` keeps, for its life (one run, sweep or demo
day), each definition version's own templates and each template it looked up; the compiled
templates live in the shared environments.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import (
    BaseLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    meta,
    pass_context,
    select_autoescape,
)
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

from notifications.config import Config
from notifications.render.rendered import Rendered, one_line
from onboarding import i18n

if TYPE_CHECKING:
    from onboarding.db import Database


#: The shipped templates: notifications/templates, beside this package.
PACKAGE_TEMPLATES = Path(__file__).parent.parent / "templates"

_MONTHS = {
    "da": (
        "januar",
        "februar",
        "marts",
        "april",
        "maj",
        "juni",
        "juli",
        "august",
        "september",
        "oktober",
        "november",
        "december",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}
_WEEKDAYS = {
    "da": ("mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}


#: The language of the message being rendered. Per render, not per environment: one environment
#: serves every language, and messages may be rendered in several threads at once (a context
#: variable is per thread). Read by gettext/ngettext in templates and by ``long_date`` inside
#: imported macros, which do not see the template's ``lang``.
_LANGUAGE: ContextVar[str] = ContextVar("notifications_language", default=i18n.DEFAULT)


@contextmanager
def _language(lang: str) -> Iterator[None]:
    token = _LANGUAGE.set(i18n.normalise(lang))
    try:
        yield
    finally:
        _LANGUAGE.reset(token)


def _gettext(message: str) -> str:
    return i18n.gettext(_LANGUAGE.get(), message)


def _ngettext(singular: str, plural: str, n: int) -> str:
    return i18n.ngettext(_LANGUAGE.get(), singular, plural, n)


@pass_context
def _long_date(ctx: Context, value: date | None, weekday: bool = False) -> str:
    """18. august 2021 (da) / 18 August 2021 (en); with weekday: onsdag den 18. august 2021."""
    if value is None:
        return ""
    lang = ctx.get("lang") or _LANGUAGE.get()
    month = _MONTHS[lang][value.month - 1]
    if lang == "da":
        text = f"{value.day}. {month} {value.year}"
        return f"{_WEEKDAYS['da'][value.weekday()]} den {text}" if weekday else text
    text = f"{value.day} {month} {value.year}"
    return f"{_WEEKDAYS['en'][value.weekday()]} {text}" if weekday else text


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


@pass_context
def _genitive(ctx: Context, name: str) -> str:
    """A name in the genitive for the message's language: ``KOMBIT's`` (da: an acronym keeps
    the apostrophe), ``Digitaliseringsstyrelsens``, ``Aarhus'``; en: ``KOMBIT's``,
    ``Agency's``, ``Systems'``. In HTML the name is escaped, the apostrophe is not (as it
    was written in the templates before the name became a setting)."""
    lang = ctx.get("lang") or _LANGUAGE.get()
    text = str(name)
    suffix = i18n.genitive(text, lang)[len(text) :]  # the catalogue's rule (onboarding.i18n)
    if ctx.eval_ctx.autoescape:
        return Markup(f"{escape(text)}{suffix}")
    return f"{text}{suffix}"


def _line_breaks(value: str) -> Markup:
    """Text of several lines for HTML: each line escaped, joined by ``<br>``."""
    return Markup("<br>").join(escape(line) for line in str(value).split("\n"))


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


class Renderer:
    """Renders a template name in a language with a context (one Jinja2 environment per
    templates folder and definition version's own templates, shared: see ``_environment``).

    Every template also gets ``organisation`` and ``signature`` from the settings
    (``[mail] organisation``/``signature``, ``onboarding mail configure``)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.env = _environment(config.templates_dir)
        #: Each definition version's own templates, read once per renderer (per run).
        self._own: dict[tuple[str, int], OwnTemplates | None] = {}
        #: Templates looked up by this renderer (``_get``); environments live for the process.
        self._templates: dict[tuple[int, str, str, str], Any] = {}

    def own_templates(self, db: Database, track_id: int) -> OwnTemplates | None:
        """The own templates of the definition version a track runs (None: it has none)."""
        from onboarding.definition_templates import templates

        row = db.execute(
            "SELECT definition, def_version FROM tracks WHERE id = ?", [track_id]
        ).fetchone()
        if row is None:
            return None
        key = (str(row[0]), int(row[1]))
        if key not in self._own:
            files = templates(db, *key)
            self._own[key] = OwnTemplates(key[0], key[1], files) if files else None
        return self._own[key]

    def _get(self, env: Environment, name: str, suffix: str, lang: str) -> Any:
        # The configured language first, then Danish (every template ships in Danish). Kept
        # for the renderer's life (one run, sweep or demo day): Jinja2 would look at each
        # file's modification time again for every message.
        key = (id(env), name, suffix, lang)
        found = self._templates.get(key)
        if found is None:
            found = self._templates[key] = env.select_template(
                [f"{lang}/{name}.{suffix}", f"da/{name}.{suffix}"]
            )
        return found

    def render(
        self,
        name: str,
        context: Mapping[str, Any],
        lang: str | None = None,
        own: OwnTemplates | None = None,
    ) -> Rendered:
        lang = lang or self.config.language
        env = self.env if own is None else _environment(self.config.templates_dir, own)
        ctx = {
            "organisation": self.config.organisation,
            "signature": self.config.signature or self.config.organisation,
            **context,
            "lang": lang,
        }
        with _language(lang):
            subject = one_line(self._get(env, name, "subject.txt", lang).render(ctx))
            text = self._get(env, name, "txt", lang).render(ctx)
            html = self._get(env, name, "html", lang).render(ctx)
        return Rendered(subject=subject, text=text, html=html)
