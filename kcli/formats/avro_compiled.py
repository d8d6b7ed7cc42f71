"""An Avro schema compiled into one Python function that decodes a body.

fastavro's ``schemaless_reader`` walks the schema for every record and reads through a
file object, which costs more than the rest of ``kcli consume`` together (measured in
bench/registry_decode.py). Here the walk happens once: :func:`compile_reader` writes
the Python source of a decoder specialised to one writer schema (fields in order,
varints inlined for the one-byte case, one function per named record so that
recursive types work) and compiles it. It decodes to what fastavro gives without a
reader schema or logical types: dicts for records and maps, lists, str for strings
and enum symbols, bytes for bytes and fixed.

Bytes from the wire are never trusted: a length or count that is negative or larger
than what is left, a varint longer than 10 bytes, an enum or union index out of range
and a body with bytes left over all raise :class:`ValueError`; a truncated body raises
IndexError or struct.error. Callers treat any exception as "not this schema".
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

Reader = Callable[[bytes, int], Any]
"""``read(data, start)``: the datum whose Avro body starts at ``data[start]`` and runs
to the end of ``data``."""

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
# Items that take no bytes (null, empty records) cannot be bounded by what is left of
# the body; a block count above this is refused rather than looped over.
_MAX_EMPTY_ITEMS = 1 << 20


class Unsupported(Exception):
    """The schema has something this compiler does not handle; use fastavro."""


def _too_many(count: int, left: int, min_size: int) -> bool:
    limit = left // min_size if min_size else left + _MAX_EMPTY_ITEMS
    return count > limit


_BAD_LENGTH = "negative or overlong length"


class _Compiler:
    def __init__(self, named: dict[str, Any]) -> None:
        self.named = named
        self.functions: dict[str, str] = {}  # record fullname -> function name
        self.sources: list[str] = []
        self.constants: dict[str, Any] = {}
        self.counter = 0

    def fresh(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def resolve(self, schema: Any) -> Any:
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            if schema not in self.named:
                raise Unsupported(f"unknown named type {schema}")
            return self.named[schema]
        if isinstance(schema, dict) and schema.get("type") in _PRIMITIVES:
            return schema["type"]
        return schema

    def min_size(self, schema: Any, seen: frozenset[str] = frozenset()) -> int:
        """The fewest bytes a value of ``schema`` takes (bounds block counts)."""
        schema = self.resolve(schema)
        if isinstance(schema, list):
            return 1
        if isinstance(schema, str):
            return {"null": 0, "float": 4, "double": 8}.get(schema, 1)
        kind = schema["type"]
        if kind == "record":
            if schema["name"] in seen:
                return 0
            inner = seen | {schema["name"]}
            return sum(self.min_size(f["type"], inner) for f in schema["fields"])
        if kind == "fixed":
            return int(schema["size"])
        return 1  # enum, array, map: at least one varint

    def read_long(self, target: str, indent: str) -> list[str]:
        # inline, loop and all: most bodies are short varints, and a call per
        # multi-byte one (ids, timestamps) cost more than all the one-byte ones
        i = indent
        return [f"{i}b = data[pos]",
                f"{i}pos += 1",
                f"{i}if b < 128:",
                f"{i}    {target} = (b >> 1) ^ -(b & 1)",
                f"{i}else:",
                f"{i}    v = b & 127",
                f"{i}    shift = 7",
                f"{i}    while True:",
                f"{i}        b = data[pos]",
                f"{i}        pos += 1",
                f"{i}        v |= (b & 127) << shift",
                f"{i}        if b < 128:",
                f"{i}            break",
                f"{i}        shift += 7",
                f"{i}        if shift > 63:",
                f"{i}            raise ValueError('varint longer than 10 bytes')",
                f"{i}    {target} = (v >> 1) ^ -(v & 1)"]

    def read_length(self, target: str, indent: str) -> list[str]:
        return [*self.read_long(target, indent),
                f"{indent}if {target} < 0 or pos + {target} > end:",
                f"{indent}    raise ValueError({_BAD_LENGTH!r})"]

    def emit(self, schema: Any, target: str, indent: str) -> list[str]:
        """Source lines that decode one ``schema`` value into the variable ``target``."""
        schema = self.resolve(schema)
        if isinstance(schema, list):
            return self.emit_union(schema, target, indent)
        if isinstance(schema, str):
            return self.emit_primitive(schema, target, indent)
        kind = schema.get("type")
        if kind == "record":
            function = self.record_function(schema)
            return [f"{indent}{target}, pos = {function}(data, pos, end)"]
        if kind == "enum":
            symbols = self.fresh("symbols")
            self.constants[symbols] = tuple(schema["symbols"])
            index = self.fresh("i")
            return [*self.read_long(index, indent),
                    f"{indent}if {index} < 0:",
                    f"{indent}    raise ValueError('negative enum index')",
                    f"{indent}{target} = {symbols}[{index}]"]
        if kind == "fixed":
            size = int(schema["size"])
            return [f"{indent}if pos + {size} > end:",
                    f"{indent}    raise ValueError('fixed runs past the end')",
                    f"{indent}{target} = data[pos:pos + {size}]",
                    f"{indent}pos += {size}"]
        if kind in ("array", "map"):
            return self.emit_blocks(schema, target, indent)
        raise Unsupported(f"type {kind!r}")

    def emit_primitive(self, kind: str, target: str, indent: str) -> list[str]:
        if kind == "null":
            return [f"{indent}{target} = None"]
        if kind in ("int", "long"):
            return self.read_long(target, indent)
        if kind == "boolean":
            return [f"{indent}{target} = data[pos] != 0", f"{indent}pos += 1"]
        if kind in ("float", "double"):
            unpack, size = ("_float", 4) if kind == "float" else ("_double", 8)
            return [f"{indent}{target} = {unpack}(data, pos)[0]", f"{indent}pos += {size}"]
        length = self.fresh("n")
        lines = self.read_length(length, indent)
        if kind == "string":
            return [*lines, f"{indent}{target} = data[pos:pos + {length}].decode()",
                    f"{indent}pos += {length}"]
        return [*lines, f"{indent}{target} = data[pos:pos + {length}]",
                f"{indent}pos += {length}"]

    def emit_union(self, branches: list[Any], target: str, indent: str) -> list[str]:
        index = self.fresh("u")
        lines = self.read_long(index, indent)
        for number, branch in enumerate(branches):
            lines.append(f"{indent}{'if' if number == 0 else 'elif'} {index} == {number}:")
            lines += self.emit(branch, target, indent + "    ")
        lines += [f"{indent}else:", f"{indent}    raise ValueError('union index out of range')"]
        return lines

    def emit_blocks(self, schema: Any, target: str, indent: str) -> list[str]:
        is_map = schema["type"] == "map"
        items = schema["values"] if is_map else schema["items"]
        count, item, key = self.fresh("c"), self.fresh("v"), self.fresh("k")
        min_size = self.min_size(items) + (1 if is_map else 0)
        inner = indent + "    "
        lines = [f"{indent}{target} = {{}}" if is_map else f"{indent}{target} = []",
                 f"{indent}while True:",
                 *self.read_long(count, inner),
                 f"{inner}if {count} == 0:",
                 f"{inner}    break",
                 f"{inner}if {count} < 0:",  # a negative count is followed by a byte size
                 f"{inner}    {count} = -{count}",
                 *self.read_long("_", inner + "    "),
                 f"{inner}if _too_many({count}, end - pos, {min_size}):",
                 f"{inner}    raise ValueError('block count larger than the body')",
                 f"{inner}for _ in range({count}):"]
        body = inner + "    "
        if is_map:
            lines += self.emit_primitive("string", key, body)
        lines += self.emit(items, item, body)
        lines.append(f"{body}{target}[{key}] = {item}" if is_map
                     else f"{body}{target}.append({item})")
        return lines

    def record_function(self, schema: dict[str, Any]) -> str:
        name = schema["name"]
        if name in self.functions:
            return self.functions[name]
        function = self.fresh("record")
        self.functions[name] = function  # before the fields: a field may refer back
        lines = [f"def {function}(data, pos, end):", *self.emit_fields(schema, "datum"),
                 "    return datum, pos"]
        self.sources.append("\n".join(lines))
        return function

    def emit_fields(self, schema: dict[str, Any], target: str) -> list[str]:
        """A record's fields, read in order into ``target`` (a dict). Runs of fixed-size
        fields (float, double, boolean, fixed) are read with one struct unpack."""
        lines: list[str] = []
        values: list[str] = []
        run: list[tuple[str, str, int]] = []  # (variable, struct code, size)

        def flush() -> None:
            if not run:
                return
            unpack = self.fresh("unpack")
            fmt = "<" + "".join(code for _, code, _ in run)
            self.constants[unpack] = struct.Struct(fmt).unpack_from
            names = ", ".join(variable for variable, _, _ in run)
            lines.extend([f"    {names}, = {unpack}(data, pos)",
                          f"    pos += {sum(size for _, _, size in run)}"])
            run.clear()

        for field in schema["fields"]:
            value = self.fresh("f")
            values.append(f"{field['name']!r}: {value}")
            fixed = self.fixed_size(field["type"])
            if fixed is not None:
                run.append((value, *fixed))
                continue
            flush()
            lines += self.emit(field["type"], value, "    ")
        flush()
        lines.append(f"    {target} = {{{', '.join(values)}}}")
        return lines

    def fixed_size(self, schema: Any) -> tuple[str, int] | None:
        """The struct code and size of a type that always takes the same bytes."""
        schema = self.resolve(schema)
        if isinstance(schema, str):
            return {"float": ("f", 4), "double": ("d", 8), "boolean": ("?", 1)}.get(schema)
        if isinstance(schema, dict) and schema.get("type") == "fixed":
            return f"{int(schema['size'])}s", int(schema["size"])
        return None


def compile_reader(parsed: Any) -> Reader:
    """A decoder for bodies written with ``parsed`` (a schema from fastavro's
    ``parse_schema``, logical types removed). Raises :class:`Unsupported` for what it
    does not handle, and for schemas nested too deeply for Python's compiler."""
    compiler = _Compiler(dict(parsed.get("__named_schemas", {}))
                         if isinstance(parsed, dict) else {})
    top = compiler.resolve(parsed)
    if isinstance(top, dict) and top.get("type") == "record":
        lines = compiler.emit_fields(top, "datum")  # inline: one call less per body
    else:
        lines = compiler.emit(parsed, "datum", "    ")
    source = "\n\n".join([*compiler.sources,
                          "\n".join(["def read(data, pos):", "    end = len(data)", *lines,
                                     "    if pos != end:",
                                     "        raise ValueError(f'{end - pos} bytes left "
                                     "over' if pos < end else 'body ends early')",
                                     "    return datum"])])
    namespace: dict[str, Any] = {
        "_too_many": _too_many,
        "_float": struct.Struct("<f").unpack_from, "_double": struct.Struct("<d").unpack_from,
        **compiler.constants}
    try:
        exec(compile(source, "<avro reader>", "exec"), namespace)
    except (SyntaxError, RecursionError, MemoryError) as error:
        raise Unsupported(f"schema too deep to compile: {error}") from None
    reader: Reader = namespace["read"]
    return reader
