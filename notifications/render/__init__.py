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
* ``templates``: the Jinja2 side: the shared sandboxed environments, template lookup,
  ``template_problems``, the filters and ``Renderer``;
* ``ics``: the deadline's calendar file;
* ``headers``: our folding of Subject and display names, and the email policy;
* ``message``: ``build_message``, the reference build, and ``build_outgoing``, the same bytes
  through a frame per message shape.
"""

from __future__ import annotations

from notifications.render.headers import header_text
from notifications.render.ics import METHODS, due_calendar
from notifications.render.message import Attachment, Outgoing, build_message, build_outgoing
from notifications.render.message import _fold_field as _fold_field
from notifications.render.message import _folded_simple as _folded_simple
from notifications.render.rendered import Rendered, one_line
from notifications.render.templates import (
    PACKAGE_TEMPLATES,
    OwnTemplates,
    Renderer,
    shipped_internal,
    template_problems,
)

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
