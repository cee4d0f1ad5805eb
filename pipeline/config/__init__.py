"""Typed, validated configuration: YAML with ``base:`` inheritance and ``--set`` overrides."""

from pipeline.config.loader import dump_config, load_config, load_recipe, parse_overrides
from pipeline.config.schema import Config

__all__ = ["Config", "load_config", "load_recipe", "dump_config", "parse_overrides"]
