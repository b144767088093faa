"""``s2cube mosaic``'s option flags, generated from the config dataclasses.

One click option per field of :class:`~s2cube.config.MosaicConfig` and
:class:`~s2cube.config.ExecutionOptions` (type from the annotation, help from the field's
metadata), so a new config field is a new flag without touching the CLI.  A ``--config`` TOML
file gives the same keys; flags win.  Validation is the configs' own (``__post_init__``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import click

from ..config import ExecutionOptions, MosaicConfig, check_bands
from ..errors import InputError

__all__ = ["EXPLICIT_NONE", "build_configs", "config_options"]

EXPLICIT_NONE = "<none>"


def _none_or(kind: type) -> click.ParamType:
    """A click type that also accepts ``none`` (for options whose None means "off"/"default")."""

    class NoneOr(click.ParamType):
        name = f"{kind.__name__}|none"

        def convert(self, value: Any, param: Any, ctx: Any) -> Any:
            if value is None or value == EXPLICIT_NONE:
                return value
            if str(value).lower() in ("none", "off"):
                return EXPLICIT_NONE
            try:
                return kind(value)
            except ValueError:
                self.fail(f"{value!r} is not a {kind.__name__} or 'none'", param, ctx)

    return NoneOr()


def _option_for(f: dataclasses.Field[Any], hint: Any) -> Callable[[Any], Any]:
    """One click option for one config field (type from its annotation, help from metadata)."""
    flag = "--" + f.name.replace("_", "-")
    default = f.default
    shown = ",".join(default) if isinstance(default, tuple) else default
    help_text = f"{f.metadata.get('help', '')} [default: {shown}]"
    args = get_args(hint)
    if hint is bool:
        return click.option(f"{flag}/--no-{flag[2:]}", f.name, default=None, help=help_text)
    if get_origin(hint) is Literal:
        return click.option(flag, f.name, type=click.Choice(args), default=None, help=help_text)
    if type(None) in args:
        (inner,) = (a for a in args if a is not type(None))
        return click.option(flag, f.name, type=_none_or(inner), default=None, help=help_text)
    if get_origin(hint) is tuple:
        return click.option(flag, f.name, default=None, metavar="A,B,...", help=help_text)
    return click.option(flag, f.name, type=hint, default=None, help=help_text)


def config_options(*classes: type) -> Callable[[Any], Any]:
    """Decorator: one option per field of each config dataclass (generated, never out of date)."""

    def decorate(fn: Any) -> Any:
        for cls in reversed(classes):
            hints = get_type_hints(cls)
            for f in reversed(dataclasses.fields(cls)):
                fn = _option_for(f, hints[f.name])(fn)
        return fn

    return decorate


def build_configs(
    config_file: str | None, flags: dict[str, Any]
) -> tuple[MosaicConfig, ExecutionOptions]:
    """The run's configs from a TOML file (optional) and command-line flags (which win)."""
    import tomllib

    values: dict[str, Any] = {}
    if config_file:
        try:
            values = tomllib.loads(Path(config_file).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InputError(
                f"--config {config_file!r} is not a readable TOML file: {exc}"
            ) from exc
        values = {k.replace("-", "_"): v for k, v in values.items()}
    values.update({k: None if v == EXPLICIT_NONE else v for k, v in flags.items() if v is not None})
    if isinstance(values.get("bands"), str):
        values["bands"] = check_bands(values["bands"])
    exec_names = {f.name for f in dataclasses.fields(ExecutionOptions)}
    config = MosaicConfig.from_record({k: v for k, v in values.items() if k not in exec_names})
    execution = ExecutionOptions.from_record({k: v for k, v in values.items() if k in exec_names})
    return config, execution
