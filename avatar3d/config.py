"""Config dataclasses as command-line options, YAML files and ``key=value`` overrides.

Each command's settings are one dataclass. A string literal right under a field is that
field's docstring (as in nerfstudio) and becomes its ``--help`` text. Values are layered:
defaults < ``--config FILE.yaml`` < ``--flags`` < ``key=value`` overrides.

Hand-written rather than tyro: the same fields must also come from YAML and from
``key=value`` words, with one error style (``BadArgumentError``) for all three.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import textwrap
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from avatar3d.errors import BadArgumentError, BadInputError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Docstrings of a dataclass's fields, read from its source and its dataclass bases'
    (a subclass's text wins): {field name: one-line text}."""
    docs = {}
    for base in reversed(cls.__mro__):
        if dataclasses.is_dataclass(base):
            docs.update(_own_field_docs(base))
    return docs


def _own_field_docs(cls: type) -> dict[str, str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, following in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _field_type(cls: type, name: str) -> type:
    """The field's type with ``X | None`` reduced to ``X``."""
    hint = typing.get_type_hints(cls)[name]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def _is_optional(cls: type, name: str) -> bool:
    hint = typing.get_type_hints(cls)[name]
    return type(None) in typing.get_args(hint)


def _convert(cls: type, name: str, value: Any) -> Any:
    """Turns a YAML or command-line value into the field's type, or raises BadArgumentError."""
    if value is None and not _is_optional(cls, name):
        raise BadArgumentError(f"{name} cannot be empty")
    if value is None or (_is_optional(cls, name) and isinstance(value, str) and value.lower() in {"none", "null"}):
        return None  # a plain text field keeps "none" as a word (e.g. --blink none)
    kind = _field_type(cls, name)
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text in _TRUE | _FALSE:
                return text in _TRUE
            raise ValueError
        if kind is Path:
            return Path(str(value)).expanduser()
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        raise BadArgumentError(f"{name}={value!r} is not a valid {kind.__name__}") from None


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Adds one ``--field-name`` option per field, with the field's docstring as help.

    Options default to ``argparse.SUPPRESS`` so that only the flags actually given
    override lower layers. Fields named in the class attribute ``POSITIONAL`` become
    positional arguments.
    """
    docs = field_docs(cls)
    positional = getattr(cls, "POSITIONAL", ())
    for field in dataclasses.fields(cls):
        if field.name in positional:  # e.g. the input video: `avatar3d prep VIDEO`
            parser.add_argument(field.name, metavar=field.name.upper(), help=docs.get(field.name, ""))
            continue
        flag = "--" + field.name.replace("_", "-")
        kind = _field_type(cls, field.name)
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        default = "required" if required else f"default: {field.default}"
        help_text = f"{docs.get(field.name, '')} ({default})".replace("%", "%%")
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                help=help_text)
        else:
            parser.add_argument(flag, dest=field.name, default=argparse.SUPPRESS, help=help_text,
                                metavar=field.name.upper())


def parse_overrides(words: list[str]) -> dict[str, str]:
    """``["seconds=5", "voice=en-gb"]`` -> ``{"seconds": "5", "voice": "en-gb"}``."""
    overrides = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise BadArgumentError(f"unexpected argument {word!r}: overrides are written key=value")
        overrides[key.strip().replace("-", "_")] = value
    return overrides


def load_yaml(path: Path) -> dict[str, Any]:
    """Reads a config file: a mapping of field names to values."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise BadInputError(f"cannot read config {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise BadInputError(f"config {path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadInputError(f"config {path} must be a mapping of setting: value")
    return data


def build(cls: type, *layers: dict[str, Any]) -> Any:
    """Merges layers (later wins), converts every value and constructs the config.

    Raises:
        BadArgumentError: an unknown key, a bad value or a missing required field.
    """
    names = [field.name for field in dataclasses.fields(cls)]
    values: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key not in names:
                raise BadArgumentError(f"unknown setting {key!r}; known: {', '.join(names)}")
            values[key] = _convert(cls, key, value)
    missing = [
        field.name
        for field in dataclasses.fields(cls)
        if field.name not in values
        and field.default is dataclasses.MISSING
        and field.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise BadArgumentError(f"--{missing[0].replace('_', '-')} is required")
    return cls(**values)


def to_dict(config: Any) -> dict[str, Any]:
    """Plain YAML-safe dict of a config (paths as strings)."""
    return {
        key: str(value) if isinstance(value, Path) else value
        for key, value in dataclasses.asdict(config).items()
    }


def save(config: Any, path: Path) -> None:
    """Writes the resolved config as YAML next to a command's outputs."""
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
