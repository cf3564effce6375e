"""Rendering messages: one sandboxed Jinja2 environment, templates per language, .ics attachments.

Each template name (``reminder``, ``escalation``, ``notice``, ``sapa-request``) is three files per
language under ``notifications/templates/<lang>/``: ``NAME.subject.txt``, ``NAME.txt`` (plain
text) and ``NAME.html`` (the HTML alternative, autoescaped). A file of the same relative path in
the configured templates folder overrides the shipped one, and a definition version's own
templates (stored with it, ``OwnTemplates``) come before both for its tracks' messages; since
users write templates, the environment is a ``SandboxedEnvironment``. ``StrictUndefined``
makes a misspelt variable an error, never an empty string.

Messages are ``email.message.EmailMessage`` with the default policy: a header value holding CR or
LF raises instead of injecting a header, and subjects and names are made one line first. Subject
and the display names of From and To are folded here, not by CPython (``headers``): every
reader decodes them to exactly the text set.

A package, one module per concept; this file only re-exports the public names, so
``from notifications.render import Renderer`` keeps working. Its modules, lowest first (each
imports only those above it, never this file):

* ``rendered``: what rendering gives (``Rendered``) and ``one_line``;
* ``filters``: the message's language and the filters and gettext templates call;
* ``environment``: the shared Jinja2 environments, template lookup, ``template_problems``;
* ``renderer``: ``Renderer``, a template rendered for one run;
* ``ics``: the deadline's calendar file;
* ``headers``: our folding of Subject and display names, and the email policy;
* ``message``: ``build_message``, the reference build;
* ``outgoing``: ``build_outgoing``, the same bytes through a frame per message shape.
"""

from __future__ import annotations

from notifications.render.environment import (
    PACKAGE_TEMPLATES,
    OwnTemplates,
    shipped_internal,
    template_problems,
)
from notifications.render.headers import header_text
from notifications.render.ics import METHODS, due_calendar
from notifications.render.message import Attachment, build_message
from notifications.render.outgoing import Outgoing, build_outgoing
from notifications.render.outgoing import _fold_field as _fold_field
from notifications.render.outgoing import _folded_simple as _folded_simple
from notifications.render.rendered import Rendered, one_line
from notifications.render.renderer import Renderer

__all__ = [
    "METHODS",
    "PACKAGE_TEMPLATES",
    "Attachment",
    "Outgoing",
    "OwnTemplates",
    "Rendered",
    "Renderer",
    "build_message",
    "build_outgoing",
    "due_calendar",
    "header_text",
    "one_line",
    "shipped_internal",
    "template_problems",
]
