"""The HTTP JSON API, ``/api/v1`` (docs/api.md): the same engine and library as the command line
and the web page, for programs (vendors' systems, scripts) holding an actor's API token.

Every route is listed here once; ``openapi.json`` is generated from these routes (the YAML part
of each handler's docstring is its operation), so the document cannot miss a route.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute, Mount, Route
from starlette.schemas import SchemaGenerator

from onboarding.web.api import routes as r
from onboarding.web.api.base import Call, Result, endpoint

PREFIX = "/api/v1"


def openapi(call: Call) -> Result:
    """This document: every route of the API, generated from the routes themselves.
    ---
    summary: The OpenAPI document
    security: []
    responses:
      "200":
        description: OpenAPI 3.0 document.
        content:
          application/json:
            schema: {type: object}
    """
    app_routes: list[BaseRoute] = call.request.app.routes
    mounted: list[BaseRoute] = [m for m in app_routes if isinstance(m, Mount) and m.path == PREFIX]
    return 200, SchemaGenerator(_base()).get_schema(routes=mounted)


def routes() -> list[BaseRoute]:
    """The API's routes, to mount at ``PREFIX``."""

    def get(path: str, handler: Any, **kw: Any) -> Route:
        return Route(path, endpoint(handler, **kw), methods=["GET"])

    def post(path: str, handler: Any, body: str = "json") -> Route:
        return Route(path, endpoint(handler, write=True, body=body), methods=["POST"])

    return [
        get("/openapi.json", openapi, public=True),
        get("/tracks", r.list_tracks),
        get("/tracks/{track_id:int}", r.show_track),
        get("/tracks/{track_id:int}/history", r.track_history),
        get("/tracks/{track_id:int}/transitions", r.track_transitions),
        post("/tracks/{track_id:int}/advance", r.advance),
        post("/tracks/{track_id:int}/fields", r.set_fields),
        post("/imports/status", r.import_status_file, body="raw"),
        get("/reports/rollout", r.rollout_report),
        Route(
            "/{rest:path}",
            endpoint(r.no_route, public=True),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            include_in_schema=False,
        ),
    ]


def mount() -> Mount:
    """The API as a ``Mount`` for the web app (onboarding/web/app.py)."""
    return Mount(PREFIX, routes=routes())


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


_FIELD_VALUE: dict[str, Any] = {
    "oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]
}
_WRITE: dict[str, Any] = {
    "role": {"type": "string", "description": "The role to act in (default: the one fitting)."},
    "expect_version": {"type": "integer", "description": "The version the client read."},
    "fields": {"type": "object", "additionalProperties": _FIELD_VALUE},
    "note": {"type": "string", "maxLength": r.MAX_NOTE},
    "at": {"type": "string", "description": "When it happened (default now); never later."},
}


def _base() -> dict[str, Any]:
    """Everything of the document but its paths (those come from the routes)."""
    obj: dict[str, Any] = {"type": "object"}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Onboarding API",
            "version": "1",
            "description": "Tracks, transitions, status imports and the rollout report "
            "(docs/api.md). Errors are `{\"error\": {\"status\", \"code\", \"message\"}}`.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "onboarding actor token create NAME",
                }
            },
            "parameters": {
                "TrackId": {
                    "name": "track_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer"},
                },
                "IdempotencyKey": {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 200},
                    "description": "A repeat with the same key gets the first answer and "
                    "writes nothing (24 hours).",
                },
            },
            "responses": {
                "BadRequest": _error_response("Malformed request; nothing was written."),
                "Unauthorized": _error_response("No token, or an unknown or revoked one."),
                "Forbidden": _error_response("The actor may not do this (role or scope)."),
                "NotFound": _error_response("No such thing the actor may read."),
                "Conflict": _error_response(
                    "Stale expect_version, or an Idempotency-Key still in progress."
                ),
                "Refused": _error_response(
                    "The workflow refuses it, or an Idempotency-Key reused for another request."
                ),
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["status", "code", "message"],
                            "properties": {
                                "status": {"type": "integer"},
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "lines": {"type": "array", "items": {"type": "string"}},
                            },
                        }
                    },
                },
                "TrackSummary": {
                    "type": "object",
                    "required": ["id", "definition", "state", "version"],
                    "properties": {
                        "id": {"type": "integer"},
                        "definition": {"type": "string"},
                        "subject": {"type": "string"},
                        "state": {"type": "string"},
                        "state_label": {"type": "string"},
                        "version": {"type": "integer"},
                        "due": {"type": "string", "nullable": True},
                        "overdue": {"type": "boolean"},
                        "final": {"type": "boolean"},
                    },
                },
                "TrackPage": {
                    "type": "object",
                    "required": ["tracks", "next_after"],
                    "properties": {
                        "tracks": {"type": "array", "items": _ref("TrackSummary")},
                        "next_after": {"type": "integer", "nullable": True},
                    },
                },
                "Track": {
                    "type": "object",
                    "required": ["id", "definition", "state", "version", "fields", "available"],
                    "properties": {
                        "id": {"type": "integer"},
                        "definition": {"type": "string"},
                        "state": {"type": "string"},
                        "version": {"type": "integer"},
                        "fields": obj,
                        "available": {"type": "array", "items": _ref("Transition")},
                    },
                },
                "Transition": {
                    "type": "object",
                    "required": ["trigger", "dest", "roles", "blocked_by"],
                    "properties": {
                        "trigger": {"type": "string"},
                        "label": {"type": "string", "nullable": True},
                        "dest": {"type": "string"},
                        "roles": {"type": "array", "items": {"type": "string"}},
                        "my_roles": {"type": "array", "items": {"type": "string"}},
                        "inputs": {"type": "array", "items": obj},
                        "blocked_by": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "HistoryRow": {
                    "type": "object",
                    "properties": {
                        "seq": {"type": "integer"},
                        "from": {"type": "string", "nullable": True},
                        "to": {"type": "string"},
                        "trigger": {"type": "string"},
                        "actor": {"type": "string"},
                        "role": {"type": "string"},
                        "at": {"type": "string"},
                        "fields": obj,
                    },
                },
                "Advance": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["trigger", "expect_version"],
                    "properties": {"trigger": {"type": "string"}, **_WRITE},
                },
                "SetFields": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["fields", "expect_version"],
                    "properties": _WRITE,
                },
                "ImportResult": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string"},
                        "dry_run": {"type": "boolean"},
                        "rows": {"type": "integer"},
                        "tracks_started": {"type": "integer"},
                        "tracks_moved": {"type": "integer"},
                        "outcomes": {"type": "array", "items": obj},
                    },
                },
            },
        },
    }
