"""What in a new OpenAPI document would break a client written against an old one.

The public contract is ``docs/openapi.json``. A client generated from any version of it that was
ever committed must keep working: within a version (``/api/v1``) paths, operations and fields are
only ever added. A breaking change is a new version: new paths (``/api/v2/…``) beside the old ones.

:func:`breaking_changes` lists, in words, each of these between ``old`` and ``new``:

- a path, an operation (method) or a webhook removed, or an operation's ``operationId`` changed
  (a generated client's function is named after it);
- a parameter removed, made required, or a required one added; a request body made required;
- in a request body: a field removed (bodies are strict: a client still sending it gets a 422),
  made required or added as required, an enum value removed, a type changed;
- in a success reply (and a webhook's payload): a status removed, a field removed or no longer
  required (a client may read it), an enum value removed, a type changed.
"""

from __future__ import annotations

from typing import Any

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


class _Schemas:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.named = doc.get("components", {}).get("schemas", {})

    def resolve(self, schema: dict[str, Any] | None) -> tuple[str | None, dict[str, Any]]:
        schema = schema or {}
        ref = None
        while "$ref" in schema:
            ref = schema["$ref"].rsplit("/", 1)[1]
            schema = self.named.get(ref, {})
        return ref, schema


def _kinds(schema: dict[str, Any]) -> set[str]:
    """The JSON types a schema allows (``anyOf`` of types and ``null`` included); empty: any."""
    found = set()
    if "type" in schema:
        found |= set(schema["type"]) if isinstance(schema["type"], list) else {schema["type"]}
    for option in schema.get("anyOf", []) + schema.get("oneOf", []):
        kinds = _kinds(option)
        if not kinds:
            return set()  # an option that takes anything
        found |= kinds
    if "enum" in schema or "const" in schema:
        found |= {type(v).__name__ for v in schema.get("enum", [schema.get("const")])}
    if "integer" in found:
        found.add("number")
    return found


def _values(schema: dict[str, Any], schemas: _Schemas) -> set[Any] | None:
    """The values an enum (or a const, or an anyOf of them) allows; None when not an enum."""
    _, schema = schemas.resolve(schema)
    if "enum" in schema:
        return set(schema["enum"])
    if "const" in schema:
        return {schema["const"]}
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        found: set[Any] = set()
        for option in options:
            _, option = schemas.resolve(option)
            if option.get("type") == "null":
                found.add(None)
                continue
            values = _values(option, schemas)
            if values is None:
                return None
            found |= values
        return found
    return None


def _object_parts(schema: dict[str, Any], schemas: _Schemas) -> tuple[dict[str, Any], set[str]] | None:
    """(properties, required) of an object schema, or of the one object in a nullable anyOf."""
    _, schema = schemas.resolve(schema)
    if "properties" in schema:
        return schema["properties"], set(schema.get("required", []))
    objects = [o for o in (schemas.resolve(x)[1] for x in schema.get("anyOf", [])) if "properties" in o]
    if len(objects) == 1:
        return objects[0]["properties"], set(objects[0].get("required", []))
    return None


def _items(schema: dict[str, Any], schemas: _Schemas) -> dict[str, Any] | None:
    _, schema = schemas.resolve(schema)
    if "items" in schema:
        return schema["items"]
    arrays = [o for o in (schemas.resolve(x)[1] for x in schema.get("anyOf", [])) if "items" in o]
    return arrays[0]["items"] if len(arrays) == 1 else None


def compare_schema(old: dict[str, Any], new: dict[str, Any], olds: _Schemas, news: _Schemas, where: str,
                   direction: str, seen: set[tuple[str | None, str | None]]) -> list[str]:
    """``direction``: ``request`` (the client sends it) or ``reply`` (the client reads it)."""
    old_ref, old_s = olds.resolve(old)
    new_ref, new_s = news.resolve(new)
    if old_ref or new_ref:
        if (old_ref, new_ref) in seen:
            return []
        seen = seen | {(old_ref, new_ref)}
    found: list[str] = []
    old_kinds, new_kinds = _kinds(old_s), _kinds(new_s)
    if old_kinds and new_kinds:
        narrowed = (old_kinds - new_kinds) if direction == "request" else (new_kinds - old_kinds)
        if narrowed:
            found.append(f"{where}: type {sorted(old_kinds)} is now {sorted(new_kinds)}")
    old_values, new_values = _values(old_s, olds), _values(new_s, news)
    if old_values is not None and new_values is not None and old_values - new_values:
        removed = sorted(old_values - new_values, key=str)
        found.append(f"{where}: enum value(s) {removed} removed")
    old_obj, new_obj = _object_parts(old_s, olds), _object_parts(new_s, news)
    if old_obj and new_obj:
        (old_props, old_req), (new_props, new_req) = old_obj, new_obj
        for name in old_props:
            if name not in new_props:
                found.append(f"{where}.{name}: field removed")
        if direction == "request":
            for name in sorted(new_req - old_req):
                found.append(f"{where}.{name}: " + ("now required" if name in old_props else "new required field"))
        else:
            for name in sorted(old_req - new_req):
                if name in new_props:
                    found.append(f"{where}.{name}: no longer always in the reply")
        for name in old_props.keys() & new_props.keys():
            found += compare_schema(old_props[name], new_props[name], olds, news, f"{where}.{name}", direction, seen)
    old_items, new_items = _items(old_s, olds), _items(new_s, news)
    if old_items is not None and new_items is not None:
        found += compare_schema(old_items, new_items, olds, news, f"{where}[]", direction, seen)
    return found


def _json(content: dict[str, Any] | None) -> dict[str, Any] | None:
    for media, value in (content or {}).items():
        if media == "application/json" or media.endswith("+json"):
            return value.get("schema", {})
    return None


def _operation(old: dict[str, Any], new: dict[str, Any], olds: _Schemas, news: _Schemas, where: str,
               reply_direction: str = "reply") -> list[str]:
    found: list[str] = []
    if old.get("operationId") != new.get("operationId"):
        found.append(f"{where}: operationId {old.get('operationId')!r} is now {new.get('operationId')!r}")
    old_params = {(p["in"], p["name"].lower() if p["in"] == "header" else p["name"]): p
                  for p in old.get("parameters", [])}
    new_params = {(p["in"], p["name"].lower() if p["in"] == "header" else p["name"]): p
                  for p in new.get("parameters", [])}
    for key, param in old_params.items():
        if key not in new_params:
            found.append(f"{where}: {key[0]} parameter {key[1]!r} removed")
            continue
        if new_params[key].get("required") and not param.get("required"):
            found.append(f"{where}: {key[0]} parameter {key[1]!r} now required")
        found += compare_schema(param.get("schema", {}), new_params[key].get("schema", {}), olds, news,
                                f"{where} {key[0]}.{key[1]}", "request", set())
    for key, param in new_params.items():
        if key not in old_params and param.get("required"):
            found.append(f"{where}: new required {key[0]} parameter {key[1]!r}")
    old_body, new_body = old.get("requestBody"), new.get("requestBody")
    if old_body and not new_body:
        found.append(f"{where}: request body removed")
    elif new_body and not old_body:
        if new_body.get("required"):
            found.append(f"{where}: a request body is now required")
    elif old_body and new_body:
        if new_body.get("required") and not old_body.get("required"):
            found.append(f"{where}: the request body is now required")
        for media in old_body.get("content", {}):
            if media not in new_body.get("content", {}):
                found.append(f"{where}: request body as {media} no longer taken")
        old_schema, new_schema = _json(old_body.get("content")), _json(new_body.get("content"))
        if old_schema is not None and new_schema is not None:
            found += compare_schema(old_schema, new_schema, olds, news, f"{where} body", "request", set())
    old_replies, new_replies = old.get("responses", {}), new.get("responses", {})
    for status, reply in old_replies.items():
        if not str(status).startswith("2"):
            continue
        if status not in new_replies:
            found.append(f"{where}: reply {status} removed")
            continue
        for media in reply.get("content", {}):
            if media not in new_replies[status].get("content", {}):
                found.append(f"{where}: reply {status} as {media} removed")
        old_schema, new_schema = _json(reply.get("content")), _json(new_replies[status].get("content"))
        if old_schema is not None and new_schema is not None:
            found += compare_schema(old_schema, new_schema, olds, news, f"{where} reply {status}", reply_direction,
                                    set())
    return found


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Everything in ``new`` that would break a client of ``old``; empty when none."""
    olds, news = _Schemas(old), _Schemas(new)
    found: list[str] = []
    for path, item in old.get("paths", {}).items():
        if path not in new.get("paths", {}):
            found.append(f"{path}: path removed")
            continue
        for method in METHODS:
            if method not in item:
                continue
            where = f"{method.upper()} {path}"
            if method not in new["paths"][path]:
                found.append(f"{where}: operation removed")
                continue
            found += _operation(item[method], new["paths"][path][method], olds, news, where)
    for name, item in old.get("webhooks", {}).items():
        if name not in new.get("webhooks", {}):
            found.append(f"webhook {name}: removed")
            continue
        for method in METHODS:
            if method in item and method in new["webhooks"][name]:
                # A webhook's body is what the client receives: compared as a reply.
                old_op, new_op = item[method], new["webhooks"][name][method]
                old_body, new_body = _json(old_op.get("requestBody", {}).get("content")), \
                    _json(new_op.get("requestBody", {}).get("content"))
                if old_body is not None and new_body is not None:
                    found += compare_schema(old_body, new_body, olds, news, f"webhook {name} payload", "reply", set())
    for name in old.get("components", {}).get("securitySchemes", {}):
        if name not in new.get("components", {}).get("securitySchemes", {}):
            found.append(f"security scheme {name!r} removed")
    return found
