"""``/api/openapi.json``: the OpenAPI 3.1 document, built from the request and result models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from hub.api.errors import CHANNEL_ERRORS
from hub.api.methods import Method
from hub.api.models import ErrorBody

_REF = "#/components/schemas/{model}"

_ERRORS = {
    "400": "Bad request: the body is not a JSON object, or invalid params.",
    "401": "No API key, or not one of [api] keys.",
    "403": "Refused.",
    "404": "Unknown method.",
    "413": "The body is over [api] max_body_bytes, or the payload over the namespace's limit.",
    "503": "The engine (Redis) is unavailable: nothing was done; try again.",
}


def _schema(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=_REF)
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema
    return {"$ref": _REF.format(model=model.__name__)}


def openapi(methods: dict[str, Method], *, version: str = "0.1.0") -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    error = _schema(ErrorBody, schemas)
    error_reply = {
        "type": "object",
        "properties": {"error": error},
        "required": ["error"],
    }
    paths: dict[str, Any] = {}
    for name, method in methods.items():
        request = _schema(method.request, schemas)
        result: dict[str, Any] = (
            _schema(method.result, schemas) if method.result is not None else {}
        )
        responses: dict[str, Any] = {
            "200": {
                "description": "Done.",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"result": result},
                            "required": ["result"],
                        }
                    }
                },
            }
        }
        for status, text in _ERRORS.items():
            responses[status] = {
                "description": text,
                "content": {"application/json": {"schema": error_reply}},
            }
        paths[f"/api/{name}"] = {
            "post": {
                "operationId": name,
                "summary": method.summary,
                "security": [{"apikey": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": request}},
                },
                "responses": responses,
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "wshub server API",
            "version": version,
            "description": "Publish, presence, history and session control for backends. "
            "Channel errors keep their channels.v1 codes: "
            + ", ".join(f"{cls.__name__} {code}" for cls, (code, _) in CHANNEL_ERRORS.items()),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apikey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": 'The header\'s value is "apikey <key>".',
                }
            },
        },
    }
