"""msgspec Structs in the OpenAPI document as the hub decodes them (see mdm/api/openapi.py).

litestar's own schema of a Struct leaves out what the hub holds bodies to: that
a Struct forbidding unknown fields refuses them, the JSON Schema keywords of a
field's `Meta(extra_json_schema=...)` (a `pattern`), a Struct's rule across its
fields (`__json_schema_extra__`), integer bounds as written (litestar's are
floats: 2**63 - 1 becomes 2**63) and the constraints of a list's items.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec
import msgspec.inspect
from litestar._openapi.schema_generation.plugins import StructSchemaPlugin
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator


class StructSchemas(OpenAPISchemaPlugin):
    """litestar's schema of a msgspec Struct, with what it leaves out (the module's docstring).

    Extension keywords (`x-sensitive`) have no place in litestar's Schema: the
    exported JSON Schema (schemas/json) carries them.
    """

    def __init__(self) -> None:
        self._litestar = StructSchemaPlugin()

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return self._litestar.is_plugin_supported_field(field_definition)

    def to_openapi_schema(
        self, field_definition: FieldDefinition, schema_creator: SchemaCreator
    ) -> Schema:
        schema = self._litestar.to_openapi_schema(field_definition, schema_creator)
        struct = field_definition.type_
        if struct.__struct_config__.forbid_unknown_fields:
            schema.additional_properties = False
        info = msgspec.inspect.type_info(struct)
        assert isinstance(info, msgspec.inspect.StructType)
        properties = schema.properties or {}
        for field in info.fields:
            target = properties.get(field.encode_name)
            if isinstance(target, Schema):
                _constrain(target, field.type)
                _extend(target, _field_keywords(field.type))
        _extend(schema, getattr(struct, "__json_schema_extra__", {}))
        return schema


def _constrain(schema: Schema, t: msgspec.inspect.Type) -> None:
    """A field's constraints exactly as msgspec checks them.

    litestar writes integer bounds as floats (2**63 - 1 becomes 2**63) and
    leaves out the constraints of a list's items.
    """
    if isinstance(t, msgspec.inspect.UnionType):
        arms = [a for a in t.types if not isinstance(a, msgspec.inspect.NoneType)]
        if len(arms) != 1:
            return
        t = arms[0]  # litestar puts an optional value's constraints beside its oneOf
    if isinstance(t, msgspec.inspect.Metadata):
        t = t.type
    if isinstance(t, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        set_values(
            schema, minimum=t.ge, maximum=t.le, exclusive_minimum=t.gt, exclusive_maximum=t.lt
        )
    elif isinstance(t, msgspec.inspect.StrType):
        set_values(schema, min_length=t.min_length, max_length=t.max_length, pattern=t.pattern)
    elif isinstance(t, msgspec.inspect.ListType):
        set_values(schema, min_items=t.min_length, max_items=t.max_length)
        if isinstance(schema.items, Schema):
            _constrain(schema.items, t.item_type)


def set_values(schema: Schema, **values: Any) -> None:
    """Set the attributes given a value (None: leave as it is)."""
    for name, value in values.items():
        if value is not None:
            setattr(schema, name, value)


# Keywords litestar already takes from msgspec's metadata.
_TAKEN = frozenset({"title", "description", "examples"})


def _field_keywords(t: msgspec.inspect.Type) -> dict[str, Any]:
    """The extra JSON Schema of a field's Meta (also inside `X | None`), less what litestar took."""
    arms = t.types if isinstance(t, msgspec.inspect.UnionType) else (t,)
    found: dict[str, Any] = {}
    for arm in arms:
        if isinstance(arm, msgspec.inspect.Metadata) and arm.extra_json_schema:
            found.update(arm.extra_json_schema)
    return {k: v for k, v in found.items() if k not in _TAKEN and not k.startswith("x-")}


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_SUBSCHEMAS = frozenset({"anyOf", "allOf", "oneOf"})


def _extend(schema: Schema, keywords: Mapping[str, Any]) -> None:
    """Set JSON Schema `keywords` (JSON names, JSON values) on a litestar Schema."""
    aliases = Schema.field_aliases()
    for key, value in keywords.items():
        name = aliases.get(key) or _CAMEL.sub("_", key).lower()
        if not hasattr(schema, name):
            raise ValueError(f"{key!r} is not a JSON Schema keyword litestar's Schema has")
        if key in _SUBSCHEMAS:
            value = [_schema(v) for v in value]
        elif key == "properties":
            value = {k: _schema(v) for k, v in value.items()}
        elif key in ("not", "items"):
            value = _schema(value)
        elif key == "type":
            value = (
                [OpenAPIType(v) for v in value] if isinstance(value, list) else OpenAPIType(value)
            )
        setattr(schema, name, value)


def _schema(keywords: Mapping[str, Any]) -> Schema:
    schema = Schema()
    _extend(schema, keywords)
    return schema
