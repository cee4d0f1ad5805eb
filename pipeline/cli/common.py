"""What every CLI module shares: the CONFIG argument with ``--set`` overrides,
WIDTHxHEIGHT sizes."""

from __future__ import annotations

from pathlib import Path

import click


def config_argument(func):
    """CONFIG path plus repeatable ``--set a.b=value`` overrides."""
    func = click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a config value, e.g. --set folds.k=5 (repeatable).",
    )(func)
    return click.argument("config", type=click.Path(dir_okay=False, path_type=Path))(func)


def parse_size(_ctx, _param, value: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected WIDTHxHEIGHT, e.g. 480x320") from None
    return width, height
