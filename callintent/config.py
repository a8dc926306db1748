"""Typed configuration: YAML files plus ``key=value`` overrides into frozen dataclasses.

Every stage has one frozen config dataclass (``TrainConfig``, ``ExportConfig``, ``StreamConfig``…)
whose ``__post_init__`` rejects bad values by name. :func:`load_config` is the only way a file
becomes such an object: it rejects unknown keys and wrong types, naming the key, so a typo in a
run config fails before any work starts. :func:`dump_config` writes the resolved config beside
every artifact.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from callintent.errors import UserError

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """A configuration file or override is invalid; the message names the key."""


def load_config(
    path: str | Path | None,
    cls: type[T],
    overrides: Iterable[str] | Mapping[str, Any] = (),
    *,
    ignore: Iterable[str] = (),
) -> T:
    """Read ``path`` (YAML mapping) and ``overrides`` into an instance of the dataclass ``cls``.

    Args:
        path: YAML file, or None to start from the dataclass defaults.
        cls: A (frozen) dataclass type; nested dataclass fields take nested mappings.
        overrides: ``"key=value"`` strings (value parsed as YAML, dotted keys reach nested
            dataclasses) or a mapping applied after the file.

    Returns:
        The validated config object.

    Raises:
        ConfigError: unreadable file, unknown key, wrong type or a value ``__post_init__`` rejects.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of keys to values, got {type(loaded).__name__}")
        raw = {k: v for k, v in loaded.items() if k not in set(ignore)}
    items = overrides.items() if isinstance(overrides, Mapping) else (parse_override(o) for o in overrides)
    for key, value in items:
        _set_dotted(raw, key, value)
    where = str(path) if path is not None else cls.__name__
    return _build(cls, raw, where, prefix="")


def is_int(value: object) -> bool:
    """An ``int`` that is not a ``bool`` (YAML ``true`` must not pass as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """An ``int`` or ``float`` that is not a ``bool``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A plain, YAML-safe mapping of a config dataclass (tuples become lists, paths strings)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, Path):
            return str(value)
        return value

    return plain(config)


def dump_config(config: Any, path: str | Path) -> None:
    """Write the resolved config as YAML (so an artifact says exactly how it was made)."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False), encoding="utf-8")


def parse_override(item: str) -> tuple[str, Any]:
    """``"key=value"`` -> ``(key, value)`` with the value read as YAML (``4`` a number, ``true`` a bool).

    Raises:
        ConfigError: no ``=`` or an empty key.
    """
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r}: expected key=value")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return key.strip(), parsed


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def _build(cls: type[T], raw: Mapping[str, Any], where: str, prefix: str) -> T:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: {prefix.rstrip('.') or cls.__name__} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise ConfigError(f"{where}: unknown key {(prefix + unknown[0])!r} (known keys: {known})")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(hints[name], value, where, prefix + name) for name, value in raw.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None


def _coerce(tp: Any, value: Any, where: str, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``, converting where it is lossless."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: {key} has the wrong type")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {key} must be one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where, prefix=key + ".")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: {key} must be a list, got {value!r}")
        item_tp = args[0] if args else Any
        items = [_coerce(item_tp, v, where, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: {key} must be a mapping, got {value!r}")
        ktp, vtp = args if args else (Any, Any)
        return {_coerce(ktp, k, where, key): _coerce(vtp, v, where, f"{key}.{k}") for k, v in value.items()}
    if tp is float:
        if not is_number(value):
            raise ConfigError(f"{where}: {key} must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if not is_int(value):
            raise ConfigError(f"{where}: {key} must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {key} must be a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{where}: {key} must be a path, got {value!r}")
        return Path(value)
    return value
