"""The OpenAPI 3.1 document, generated from the declared endpoints and their models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway.api.routing import Endpoint, ErrorBody

_REF = "#/components/schemas/{model}"
_ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
_ERROR_TEXT = {
    400: "Malformed request",
    401: "No valid access token",
    403: "Not allowed for this role",
    404: "Not found",
    409: "Conflicts with the current state",
    422: "Invalid input",
    429: "Too many attempts",
    503: "A dependency is unavailable",
}


def _models(endpoints: list[Endpoint]) -> list[tuple[type[BaseModel], Any]]:
    seen: list[tuple[type[BaseModel], Any]] = [(ErrorBody, "serialization")]
    for e in endpoints:
        if e.body is not None:
            seen.append((e.body, "validation"))
        if e.response is not None:
            seen.append((e.response, "serialization"))
        seen += [(model, "serialization") for _, model in e.other_responses]
    return list(dict.fromkeys(seen))


def _query_parameters(model: type[BaseModel], schema: dict[str, Any]) -> list[dict[str, Any]]:
    properties = schema.get("properties", {})
    return [
        {
            "name": name,
            "in": "query",
            "required": field.is_required(),
            "schema": {k: v for k, v in properties[name].items() if k != "title"},
            **({"description": field.description} if field.description else {}),
        }
        for name, field in model.model_fields.items()
    ]


def build_spec(endpoints: list[Endpoint], *, title: str, version: str) -> dict[str, Any]:
    keys, definitions = models_json_schema(_models(endpoints), ref_template=_REF)
    components: dict[str, Any] = definitions.get("$defs", {})
    # The cookie works for the pages; API clients send the same token as a Bearer header.
    security_schemes = {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
        "cookie": {"type": "apiKey", "in": "cookie", "name": "wa_session"},
    }

    def ref(model: type[BaseModel], mode: str) -> dict[str, Any]:
        return dict(keys[(model, mode)])  # type: ignore[index]

    def error(status: int) -> dict[str, Any]:
        return {
            "description": _ERROR_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": ref(ErrorBody, "serialization")}},
        }

    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        operation: dict[str, Any] = {
            "summary": e.summary,
            "tags": [e.tag],
            "operationId": f"{e.method.lower()}_{e.path.strip('/').replace('/', '_')}"
            .replace("{", "").replace("}", ""),
        }  # fmt: skip
        parameters = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": dict(_ID_SCHEMA)
                if name.endswith("_id")
                else {"type": "string", "minLength": 1, "maxLength": 100},
            }
            for name in e.path_params
        ]
        if e.query is not None:
            parameters += _query_parameters(e.query, e.query.model_json_schema(ref_template=_REF))
        if parameters:
            operation["parameters"] = parameters
        if e.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(e.body, "validation")}},
            }
        success: dict[str, Any] = {"description": "Success"}
        if e.response is not None:
            success["content"] = {e.media_type: {"schema": ref(e.response, "serialization")}}
        elif e.media_type != "application/json":
            success["content"] = {e.media_type: {"schema": {"type": "string"}}}
        responses: dict[str, Any] = {str(e.status): success}
        for status, model in e.other_responses:
            responses[str(status)] = {
                "description": _ERROR_TEXT.get(status, "Other"),
                "content": {"application/json": {"schema": ref(model, "serialization")}},
            }
        statuses = set(e.errors)
        if e.access != "public":
            statuses |= {401}
            operation["security"] = [{"bearer": []}, {"cookie": []}]
        if e.access == "admin":
            statuses.add(403)
        if e.body is not None:
            statuses |= {400, 422}
        if e.query is not None or e.path_params:
            statuses.add(422 if e.query is not None else 404)
        if e.path_params:
            statuses.add(404)
        for status in sorted(statuses):
            responses.setdefault(str(status), error(status))
        operation["responses"] = responses
        paths.setdefault(e.path, {})[e.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": security_schemes},
    }
