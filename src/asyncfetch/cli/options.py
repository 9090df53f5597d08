"""Click options made from the option tables of ``_options.py``: declared there, once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from .._errors import ConfigError
from .._options import Option

F = TypeVar("F", bound=Callable[..., Any])


def click_type(option: Option[Any]) -> Any:
    """The click type that checks ``option``'s value (None: click's own for the kind)."""
    if option.choices:
        return click.Choice(option.choices)
    if option.path is not None:
        check = option.path
        path_type = option.kind if option.kind is not str else None
        return click.Path(
            exists=check.exists,
            file_okay=check.file_okay,
            dir_okay=check.dir_okay,
            allow_dash=check.allow_dash,
            path_type=path_type,
        )
    bounded = option.minimum is not None or option.maximum is not None
    if option.kind is int and bounded:
        low, high = (None if v is None else int(v) for v in (option.minimum, option.maximum))
        return click.IntRange(min=low, max=high, min_open=option.min_open)
    if option.kind is float and bounded:
        return click.FloatRange(min=option.minimum, max=option.maximum, min_open=option.min_open)
    return None


def _callback(parse: Callable[[str], Any], multiple: bool) -> Callable[..., Any]:
    def parsed(_ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        try:
            if multiple:
                return tuple(parse(item) for item in value)
            return None if value is None else parse(value)
        except (ValueError, ConfigError) as error:
            raise click.BadParameter(str(error)) from error

    return parsed


def click_option(option: Option[Any], **overrides: Any) -> click.Option:
    """``option`` as a click option; ``overrides`` change a keyword (e.g. required)."""
    settings: dict[str, Any] = {"help": option.help}
    if option.kind is bool and "/" not in option.flags[-1]:
        settings["is_flag"] = True
    else:
        settings["default"] = option.default
        settings["type"] = click_type(option)
        # As the options always showed them: a value, never "None", False or ().
        settings["show_default"] = option.default not in (None, False, ())
    if option.parse is not None:
        settings["callback"] = _callback(option.parse, option.multiple)
    for name in ("multiple", "metavar", "envvar", "required"):
        if getattr(option, name):
            settings[name] = getattr(option, name)
    return click.Option([*option.flags, option.name], **{**settings, **overrides})


def click_options(option: Option[Any], **overrides: Any) -> list[click.Option]:
    """``option`` as click options: one, or one per flag of its ``flag_values``."""
    if not option.flag_values:
        return [click_option(option, **overrides)]
    made = []
    for flag, value, text in option.flag_values:
        settings: dict[str, Any] = {"flag_value": value, "help": text}
        if value == option.default:  # the flag click starts from when none is given
            settings["default"] = True
        made.append(click.Option([flag, option.name], **settings))
    return made


def with_options(options: Sequence[Option[Any]], **overrides: Any) -> Callable[[F], F]:
    """A decorator adding ``options`` to a click command, in the given (``--help``) order."""

    def decorate(command: F) -> F:
        params = getattr(command, "__click_params__", [])
        # click's own decorators append and reverse at the end: the same here.
        for option in reversed(options):
            params.extend(reversed(click_options(option, **overrides)))
        command.__click_params__ = params  # type: ignore[attr-defined]
        return command

    return decorate
