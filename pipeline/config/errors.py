"""Turn pydantic's validation errors into one line that names the key and the valid keys."""

from __future__ import annotations

import typing
from collections.abc import Callable
from types import UnionType

from pydantic import BaseModel, Tag, ValidationError


def _model_of(annotation) -> list[type[BaseModel]]:
    """The BaseModel classes an annotation may hold (through Optional, Union, list, dict)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_of(typing.get_args(annotation)[0])
    if origin in (typing.Union, UnionType, list, tuple, dict):
        return [m for arg in typing.get_args(annotation) for m in _model_of(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _tags_of(annotation) -> dict[str, type[BaseModel]]:
    """Union members labelled with pydantic ``Tag`` (a callable discriminator), by tag."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner, *meta = typing.get_args(annotation)
        tags = {m.tag: model for m in meta if isinstance(m, Tag) for model in _model_of(inner)[:1]}
        return tags | _tags_of(inner)
    if origin in (typing.Union, UnionType, list, tuple, dict):
        return {tag: m for arg in typing.get_args(annotation) for tag, m in _tags_of(arg).items()}
    return {}


def _walk(root: type[BaseModel], loc: tuple) -> tuple[list[str], type[BaseModel] | None]:
    """Follow ``loc`` from ``root``; return the dotted key parts and the model the last
    part is in."""
    parts: list[str] = []
    candidates: list[type[BaseModel]] = [root]
    tags: dict[str, type[BaseModel]] = {}
    owner: type[BaseModel] | None = root
    for elem in loc:
        if isinstance(elem, int):
            parts.append(f"[{elem}]")
            continue
        tagged = [tags[elem]] if elem in tags else [m for m in candidates if _tag_of(m) == elem]
        if tagged:  # a discriminated-union tag in the location: choose that member, not a key
            candidates, owner, tags = tagged, tagged[0], {}
            continue
        if (
            parts and not candidates and not tags
        ):  # past a scalar field: a union branch label ('float')
            continue
        owner = next(
            (m for m in candidates if elem in m.model_fields), candidates[0] if candidates else None
        )
        parts.append(str(elem))
        field = owner.model_fields.get(elem) if owner else None
        candidates = _model_of(field.annotation) if field else []
        tags = _tags_of(field.annotation) if field else {}
    return parts, owner


def _tag_of(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("layout") or model.model_fields.get("kind")
    if field is None:
        return None
    args = typing.get_args(field.annotation)
    return args[0] if len(args) == 1 and isinstance(args[0], str) else None


def _one_per_key(errors: list[dict], root: type[BaseModel]) -> list[dict]:
    """One error per key: a value failing ``Union[Literal['tune'], float]`` fails every branch, and
    'should be tune' hides why the number was refused (below its bound, NaN); keep the number's."""
    chosen: dict[tuple[str, ...], dict] = {}
    for error in errors:
        key = tuple(_walk(root, tuple(error["loc"]))[0])
        if key not in chosen or (
            chosen[key]["type"] == "literal_error"
            and error["type"] != "literal_error"
            and not isinstance(error.get("input"), str)
        ):
            chosen[key] = error
    return list(chosen.values())


def format_validation_error(
    err: ValidationError, root: type[BaseModel], source: str | Callable[[list[str]], str]
) -> str:
    """One line: ``<file>: <problem with key>`` (+ how many more problems there are).

    ``source`` is the file name, or a function of the offending key's parts giving where it was set.
    """
    errors = _one_per_key(err.errors(), root)
    first = errors[0]
    loc = tuple(first["loc"])
    parts, owner = _walk(root, loc)
    key = ".".join(parts).replace(".[", "[") or "(top level)"
    if first["type"] == "extra_forbidden":
        valid = ", ".join(owner.model_fields) if owner else "?"
        msg = f"unknown key '{key}'; valid keys here: {valid}"
    elif first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        ctx = first.get("ctx", {})
        tag_key = f"{key}.{ctx.get('discriminator', 'layout')}".replace("'", "")
        msg = (
            f"key '{tag_key}' must be one of {ctx.get('expected_tags', '?')}, "
            f"got {ctx.get('tag')!r}"
        )
    elif first["type"] == "missing":
        msg = f"missing required key '{key}'"
    else:
        got = first.get("input")
        msg = f"key '{key}': {first['msg']}, got {got!r}"
    more = (
        f" (+{len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        if len(errors) > 1
        else ""
    )
    where = source(parts) if callable(source) else source
    return f"{where}: {msg}{more}"
