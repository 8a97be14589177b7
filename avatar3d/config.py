"""Config dataclasses as command-line options, YAML files and ``key=value`` overrides.

Each command's settings are one dataclass; a field whose type is itself a config dataclass
nests it (``head.grid.levels``: a nested mapping in YAML, ``--head.grid.levels`` or
``head.grid.levels=12`` on the command line). A string literal right under a field is that
field's docstring (as in nerfstudio) and becomes its ``--help`` text. Values are layered:
defaults < preset (``--preset NAME``) < ``--config FILE.yaml`` < ``--flags`` < ``key=value``.

Presets are YAML files in the repository's ``configs/`` folder, which the package ships as
``avatar3d/configs``. A config class names its family in ``PRESETS`` (``"render"``):
``configs/render.yaml`` is its preset ``default``, ``configs/render-NAME.yaml`` its preset
``NAME``; ``DEFAULT_PRESET`` picks the one used without ``--preset`` (else ``default``).
Adding a preset is adding a file.

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

PRESET_FOLDER = Path(__file__).parent / "configs"
"""The shipped presets: a link to the repository's ``configs/``, installed as package data."""

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


def _nested_type(cls: type, name: str) -> type | None:
    """The config dataclass a field nests, or None for a plain value."""
    kind = _field_type(cls, name)
    return kind if dataclasses.is_dataclass(kind) else None


def _convert(cls: type, name: str, value: Any, key: str) -> Any:
    """Turns a YAML or command-line value into the field's type, or raises BadArgumentError
    naming ``key`` (the field's dotted path)."""
    if value is None and not _is_optional(cls, name):
        raise BadArgumentError(f"{key} cannot be empty")
    if value is None or (_is_optional(cls, name) and isinstance(value, str) and value.lower() in {"none", "null"}):
        return None  # a plain text field keeps "none" as a word (e.g. --blink none)
    if isinstance(value, (dict, list)):
        raise BadArgumentError(f"{key} takes one value, not a {'mapping' if isinstance(value, dict) else 'list'}")
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
        raise BadArgumentError(f"{key}={value!r} is not a valid {kind.__name__}") from None


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Adds ``--preset`` (if the class has presets) and one ``--field-name`` option per field,
    with the field's docstring as help; the fields of a nested config get ``--group.field-name``
    options in a help section of their own.

    Options default to ``argparse.SUPPRESS`` so that only the flags actually given
    override lower layers; their dest is the field's dotted path. Fields named in the class
    attribute ``POSITIONAL`` become positional arguments. The help shows the default
    preset's value where it sets one.
    """
    preset, name = {}, None
    if getattr(cls, "PRESETS", None):
        name = default_preset(cls)
        preset = _nest(load_preset(cls))
        parser.add_argument("--preset", default=argparse.SUPPRESS, metavar="NAME",
                            help=f"settings preset, a file in configs/: {', '.join(preset_names(cls))} "
                                 f"(default: {name})")
    _add_fields(parser, parser, cls, "", _defaults(cls), preset, name, getattr(cls, "POSITIONAL", ()))


def _add_fields(parser: argparse.ArgumentParser, group, cls: type, prefix: str, defaults: dict, preset: dict,
                preset_name: str | None, positional: tuple[str, ...] = ()) -> None:
    """`add_arguments` for the fields of ``cls`` at the dotted ``prefix``, into ``group``;
    ``defaults`` and ``preset`` hold their default and default-preset values."""
    docs = field_docs(cls)
    nested = []
    for field in dataclasses.fields(cls):
        key = prefix + field.name
        if field.name in positional:  # e.g. the input video: `avatar3d prep VIDEO`
            group.add_argument(key, metavar=key.upper(), help=docs.get(field.name, ""))
        elif _nested_type(cls, field.name):
            nested.append(field)
        else:
            if field.name in preset:
                shown = f"preset {preset_name}: {preset[field.name]}"
            else:
                shown = f"default: {defaults[field.name]}" if field.name in defaults else "required"
            help_text = f"{docs.get(field.name, '')} ({shown})".replace("%", "%%")
            flag = "--" + prefix + field.name.replace("_", "-")
            if _field_type(cls, field.name) is bool:
                group.add_argument(flag, dest=key, action=argparse.BooleanOptionalAction,
                                   default=argparse.SUPPRESS, help=help_text)
            else:
                group.add_argument(flag, dest=key, default=argparse.SUPPRESS, help=help_text,
                                   metavar=field.name.upper())
    for field in nested:  # each in a help section after the plain fields (argparse sections do not nest)
        key = prefix + field.name
        section = parser.add_argument_group(key, docs.get(field.name, ""))
        _add_fields(parser, section, _nested_type(cls, field.name), key + ".", defaults[field.name],
                    preset.get(field.name) or {}, preset_name)


def parse_overrides(words: list[str]) -> dict[str, str]:
    """``["seconds=5", "head.grid.levels=12"]`` -> ``{"seconds": "5", "head.grid.levels": "12"}``."""
    overrides = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise BadArgumentError(f"unexpected argument {word!r}: overrides are written key=value")
        overrides[key.strip().replace("-", "_")] = value
    return overrides


def load_yaml(path: Path) -> dict[str, Any]:
    """Reads a config file: a mapping of field names to values (nested mappings for nested configs)."""
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


def default_preset(cls: type) -> str:
    """The preset a config class with ``PRESETS`` uses when none is named."""
    return getattr(cls, "DEFAULT_PRESET", "default")


def preset_names(cls: type) -> list[str]:
    """Names of the presets of a config class (see the module doc), sorted."""
    family = cls.PRESETS
    names = ["default"] if (PRESET_FOLDER / f"{family}.yaml").is_file() else []
    return sorted(names + [path.stem[len(family) + 1:] for path in PRESET_FOLDER.glob(f"{family}-*.yaml")])


def load_preset(cls: type, name: str | None = None) -> dict[str, Any]:
    """The settings of a config class's preset ``name`` (its default preset when None); {} for
    a class without presets.

    Raises:
        BadArgumentError: no such preset (naming those there are).
    """
    family = getattr(cls, "PRESETS", None)
    if family is None:
        return {}
    name = name or default_preset(cls)
    path = PRESET_FOLDER / (f"{family}.yaml" if name == "default" else f"{family}-{name}.yaml")
    if not path.is_file():
        raise BadArgumentError(f"--preset {name!r}: use {' or '.join(preset_names(cls))} (files in configs/)")
    return load_yaml(path)


def build(cls: type, *layers: dict[str, Any]) -> Any:
    """Merges layers over the defaults (later wins) and constructs the config.

    A layer maps field names to values; a nested config's values come as a nested mapping
    (``{"head": {"grid": {"levels": 12}}}``) or under a dotted key (``{"head.grid.levels": 12}``),
    and only the values given replace the defaults. Every value is converted to its field's type.

    Raises:
        BadArgumentError: an unknown key, a bad value or a missing required field, naming
            the key (``head.grid.levels``).
    """
    values = _defaults(cls)
    for layer in layers:
        _merge(values, _nest(layer))
    return _construct(cls, values, "")


def _defaults(cls: type) -> dict[str, Any]:
    """The defaults of a config class's fields as plain values (a nested config as a mapping);
    required fields are left out."""
    values = {}
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            values[field.name] = _plain(field.default)
        elif field.default_factory is not dataclasses.MISSING:
            values[field.name] = _plain(field.default_factory())
    return values


def _nest(layer: dict[str, Any]) -> dict[str, Any]:
    """A layer with dotted keys spelled out as nested mappings."""
    nested: dict[str, Any] = {}
    for key, value in layer.items():
        *parents, leaf = str(key).split(".")
        entry = {leaf: value}
        for parent in reversed(parents):
            entry = {parent: entry}
        _merge(nested, entry)
    return nested


def _merge(base: dict[str, Any], layer: dict[str, Any]) -> None:
    """Merges ``layer`` into ``base`` in place: mappings key by key, anything else replaced."""
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = _nest(value) if isinstance(value, dict) else value


def _construct(cls: type, values: dict[str, Any], prefix: str) -> Any:
    """Converts merged ``values`` into an instance of ``cls``; ``prefix`` is its dotted path."""
    names = [field.name for field in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            where = f"{prefix[:-1]} has" if prefix else "known"
            raise BadArgumentError(f"unknown setting {prefix + key!r}; {where}: {', '.join(names)}")
        nested = _nested_type(cls, key)
        if nested is None:
            kwargs[key] = _convert(cls, key, value, prefix + key)
        elif isinstance(value, dict):
            kwargs[key] = _construct(nested, value, prefix + key + ".")
        else:
            first = dataclasses.fields(nested)[0].name
            raise BadArgumentError(f"{prefix + key} is a group of settings, not one value: "
                                   f"set its fields, e.g. {prefix + key}.{first}=...")
    missing = [name for name in names if name not in kwargs]
    if missing:
        raise BadArgumentError(f"--{(prefix + missing[0]).replace('_', '-')} is required")
    try:
        return cls(**kwargs)
    except BadArgumentError as error:
        if not prefix:
            raise
        raise BadArgumentError(f"{prefix[:-1]}: {error}") from None


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return to_dict(value)
    return str(value) if isinstance(value, Path) else value


def to_dict(config: Any) -> dict[str, Any]:
    """Plain YAML-safe dict of a config (paths as strings, nested configs as dicts)."""
    return {field.name: _plain(getattr(config, field.name)) for field in dataclasses.fields(config)}


def to_yaml(config: Any) -> str:
    """The config as YAML, nested configs as nested mappings; `build` from it gives the same config."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def save(config: Any, path: Path) -> None:
    """Writes the resolved config as YAML next to a command's outputs."""
    Path(path).write_text(to_yaml(config))
