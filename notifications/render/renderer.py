"""``Renderer``: a template name rendered in a language with a context, for one run.

Keeps, for its life (one run, sweep or demo day), each definition version's own templates and
each template it looked up; the compiled templates themselves live in the shared environments.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from jinja2 import Environment

from notifications.config import Config
from notifications.render.environment import OwnTemplates, _environment
from notifications.render.filters import _language
from notifications.render.rendered import Rendered, one_line

if TYPE_CHECKING:
    from onboarding.db import Database


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
