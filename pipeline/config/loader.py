"""Load YAML configs: ``base:`` inheritance, ``--set a.b=value`` overrides, typed validation.

Errors are one line and name the file and key; unknown keys list the valid ones.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from pipeline.config.errors import format_validation_error
from pipeline.config.recipe import Recipe
from pipeline.config.schema import Config, EnsembleConfig
from pipeline.errors import PipelineError


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise PipelineError(
            f"config file not found: {path} (check the path; configs live in configs/)"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise PipelineError(
            f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start}); "
            "save it as UTF-8 YAML"
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise PipelineError(
            f"{path}:{where} is not valid YAML ({getattr(err, 'problem', err)})"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PipelineError(
            f"{path}: top level must be a mapping of keys, got {type(data).__name__}"
        )
    return data


def deep_merge(base: dict, override: dict) -> dict:
    """Return ``base`` updated by ``override``; nested mappings merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


Origins = dict[tuple[str, ...], str]  # dotted key -> the file (or --set) that gave its value


def _record(origins: Origins, data: dict, source: str, prefix: tuple[str, ...] = ()) -> None:
    for key, value in data.items():
        origins[(*prefix, str(key))] = source
        if isinstance(value, dict):
            _record(origins, value, source, (*prefix, str(key)))


def origin_of(origins: Origins, parts: list[str], default: str) -> str:
    """Where the value at dotted ``parts`` (or its closest enclosing section) was set."""
    for n in range(len(parts), 0, -1):
        if tuple(parts[:n]) in origins:
            return origins[tuple(parts[:n])]
    return default


def load_raw(
    path: str | Path, _chain: tuple[Path, ...] = (), origins: Origins | None = None
) -> dict:
    """Read ``path`` and everything it inherits through ``base:`` (relative to the file).

    ``origins``, if given, is filled with the file that set each key
    (the last one wins, as in the merge).
    """
    path = Path(path).resolve()
    if path in _chain:
        cycle = " -> ".join(p.name for p in (*_chain, path))
        raise PipelineError(
            f"{path}: 'base:' inheritance forms a cycle ({cycle}); remove one 'base:' link"
        )
    data = _read_yaml(path)
    bases = data.pop("base", None)
    if bases is None:
        bases = []
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise PipelineError(f"{path}: 'base' must be a file name or a list of file names")
    merged: dict = {}
    for base in bases:
        if not (path.parent / base).is_file():
            raise PipelineError(
                f"{path}: 'base: {base}' not found (looked for {path.parent / base}); "
                "base paths are relative to the file that names them"
            )
        merged = deep_merge(merged, load_raw(path.parent / base, (*_chain, path), origins))
    if origins is not None:
        _record(origins, data, str(path))
    return deep_merge(merged, data) if bases else data


def parse_overrides(items: Iterable[str]) -> list[tuple[list[str], Any]]:
    """Parse ``a.b=value`` strings; values are YAML scalars/lists
    (``3`` -> int, ``null`` -> None)."""
    parsed = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip() or any(not p for p in key.strip().split(".")):
            raise PipelineError(
                f"--set {item!r}: expected KEY=VALUE with a dotted key, e.g. --set folds.k=5"
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        parsed.append((key.strip().split("."), value))
    return parsed


def apply_overrides(data: dict, overrides: Iterable[tuple[list[str], Any]]) -> dict:
    """Set each dotted key in a copy of ``data``, creating intermediate mappings."""
    out = copy.deepcopy(data)
    for keys, value in overrides:
        node = out
        for i, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                dotted = ".".join(keys[: i + 1])
                raise PipelineError(f"--set {'.'.join(keys)}: '{dotted}' is a value, not a section")
            node = child
        node[keys[-1]] = value
    return out


# The kinds of config file, told apart by a top-level key that only that kind has.
KINDS: tuple[tuple[str, type[BaseModel]], ...] = (("members", EnsembleConfig), ("steps", Recipe))


def schema_of(data: dict) -> type[BaseModel]:
    """The schema a config file's (merged) data is written for: an ensemble config has ``members``,
    a recipe ``steps``; anything else is an experiment config (:class:`Config`)."""
    return next((schema for key, schema in KINDS if key in data), Config)


def load_config(
    path: str | Path, overrides: Iterable[str] = (), schema: type[BaseModel] | None = Config
):
    """Load, merge, override and validate a config file into a typed ``schema`` (default
    :class:`Config`; None: whichever ``schema_of`` the file's keys name, before the overrides).

    A validation error names where the offending value came from: the file (``base:`` files
    included) or the ``--set`` that set it.
    """
    origins: Origins = {}
    data = load_raw(path, origins=origins)
    schema = schema or schema_of(data)
    top = str(Path(path).resolve())
    origins = {key: str(path) if source == top else source for key, source in origins.items()}
    overrides = list(overrides)
    parsed = parse_overrides(overrides)
    for item, (keys, _value) in zip(overrides, parsed, strict=True):
        origins = {k: v for k, v in origins.items() if k[: len(keys)] != tuple(keys)}
        origins[tuple(keys)] = f"--set {item} (over {path})"
    data = apply_overrides(data, parsed)
    try:
        return schema.model_validate(data)
    except ValidationError as err:
        raise PipelineError(
            format_validation_error(err, schema, lambda parts: origin_of(origins, parts, str(path)))
        ) from None


def load_recipe(path: str | Path, overrides: Iterable[str] = ()) -> Recipe:
    """A recipe file (``pipeline run RECIPE``), validated;
    its steps' configs are loaded when they run."""
    return load_config(path, overrides, schema=Recipe)


def dump_config(config: BaseModel) -> str:
    """The resolved config as YAML (written next to every output)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
