"""Run configs for every CLI: frozen dataclasses with working defaults and declared field checks,
built from a YAML file, command-line flags and `--set path=value` overrides, in that order.

    @dataclass(frozen=True)
    class RunConfig(Config):
        epochs: int = setting(20, check=POSITIVE_INT)
        references: ReferencesConfig = ReferencesConfig()   # nested configs: references.count=4

Every problem (unreadable YAML, unknown field, wrong type, failed check) is one InputError naming
the field by its dotted path.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from privaudit.core.errors import CliParser, InputError

C = TypeVar("C")


@dataclass(frozen=True)
class Check:
    """A constraint on one field's value and the words that describe it ("must be ...")."""

    test: Callable[[Any], bool]
    description: str


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


POSITIVE_INT = Check(lambda v: _is_int(v) and v > 0, "must be a positive integer")
NON_NEGATIVE_INT = Check(lambda v: _is_int(v) and v >= 0, "must be zero or a positive integer")
POSITIVE = Check(lambda v: _is_number(v) and v > 0, "must be positive")
NON_NEGATIVE = Check(lambda v: _is_number(v) and v >= 0, "must be zero or positive")
OPEN_UNIT = Check(lambda v: _is_number(v) and 0 < v < 1, "must be in (0, 1)")


def one_of(*choices) -> Check:
    return Check(lambda v: v in choices, f"must be one of {', '.join(map(str, choices))}")


def optional(check: Check) -> Check:
    """`check`, or None (null in YAML)."""
    return Check(lambda v: v is None or check.test(v), f"{check.description} or null")


def setting(
    default: Any = dataclasses.MISSING, *, check: Check | None = None, doc: str = ""
) -> Any:
    """A config field with a default, an optional declared check and a one-line description."""
    return dataclasses.field(default=default, metadata={"check": check, "doc": doc})


class FieldError(InputError):
    """A field's value fails its check; `path` grows as nested configs report it upwards."""

    def __init__(self, path: str, description: str, value: Any):
        self.path, self.description, self.value = path, description, value
        super().__init__(f"config field {path!r} {description} (got {plain(value)}).")

    def under(self, prefix: str) -> FieldError:
        return FieldError(f"{prefix}.{self.path}", self.description, self.value)


def plain(value: Any) -> str:
    """A value as a user wrote it: plain numbers, never numpy reprs such as np.float64(nan)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    return repr(value)


class Config:
    """Base of run configs: checks every field that declares one when the dataclass is built."""

    def __post_init__(self):
        for field in dataclasses.fields(self):
            check = field.metadata.get("check")
            value = getattr(self, field.name)
            if check is not None and not check.test(value):
                raise FieldError(field.name, check.description, value)

    def require(self, ok: bool, field: str, what: str) -> None:
        """A check across fields, in __post_init__: `what` says what the field must be or need."""
        if not ok:
            raise InputError(f"config field {field!r} {what} (got {plain(getattr(self, field))}).")

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def from_mapping(cls: type[C], values: Mapping, path: str = "") -> C:
    """`cls` built from a mapping (YAML's), recursing into nested configs, converting lists to
    tuples and ints to floats where the field says so; problems name the field's dotted path."""
    where = f"config field {path!r}" if path else "the config"
    if not isinstance(values, Mapping):
        raise InputError(
            f"{where} must be a mapping of field names to values, got {type(values).__name__}."
        )
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    for name in values:
        if name not in known:
            raise InputError(
                f"{where} has an unknown field {_join(path, name)!r}; known: {', '.join(known)}."
            )
    kwargs = {
        name: _convert(hints[name], value, _join(path, name)) for name, value in values.items()
    }
    try:
        return cls(**kwargs)
    except FieldError as exc:
        raise (exc.under(path) if path else exc) from None
    except InputError:
        raise
    except (TypeError, ValueError) as exc:  # a nested config's own check, in its own words
        raise InputError(f"{where}: {exc}" if path else str(exc)) from None


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else str(name)


def _type_name(hint) -> str:
    return getattr(hint, "__name__", str(hint).replace("typing.", ""))


def _convert(hint, value, path: str):
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if hasattr(hint, "from_value"):  # a config with a short form, e.g. an attack given by name
            return hint.from_value(value, path)
        return from_mapping(hint, value, path)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _convert(option, value, path)
            except InputError as exc:
                errors.append(exc)
        if len(options) == 1:
            raise errors[0]
        raise InputError(
            f"config field {path!r} must be {' or '.join(map(_type_name, args))}, got {plain(value)}."
        )
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise InputError(f"config field {path!r} must be a list, got {plain(value)}.")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], item, f"{path}[{i}]") for i, item in enumerate(value))
        if len(args) != len(value):
            raise InputError(
                f"config field {path!r} must be a list of {len(args)} values, got {plain(value)}."
            )
        return tuple(
            _convert(a, item, f"{path}[{i}]")
            for i, (a, item) in enumerate(zip(args, value, strict=True))
        )
    if origin is typing.Literal:
        if value not in args:
            raise InputError(
                f"config field {path!r} must be one of {', '.join(map(str, args))}, got {plain(value)}."
            )
        return value
    if hint is typing.Any or origin in (dict, Mapping) or hint in (dict, Mapping):
        return value
    if hint is float and _is_number(value):
        return float(value)
    if hint is int and _is_int(value):
        return value
    if hint in (str, bool) and isinstance(value, hint):
        return value
    raise InputError(f"config field {path!r} must be {_type_name(hint)}, got {plain(value)}.")


def read_yaml_mapping(path: str | Path) -> dict:
    """The mapping in a YAML file; an unreadable file or anything but a mapping is an InputError."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise InputError(
            f"config file {path} cannot be read ({exc.strerror or type(exc).__name__})."
        ) from exc
    except yaml.YAMLError as exc:
        raise InputError(
            f"config file {path} is not readable YAML ({str(exc).splitlines()[0]})."
        ) from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InputError(f"config file {path} must hold a mapping of field names to values.")
    return raw


def _set_path(values: dict, key: str, value: Any, source: str) -> None:
    node = values
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise InputError(f"{source}: {part!r} is not a nested config.")
    node[leaf] = value


def apply_override(values: dict, override: str) -> None:
    """One `--set path.to.field=value` (the value read as YAML) applied to a nested mapping."""
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise InputError(f"--set {override!r} must look like field.subfield=value.")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise InputError(f"--set {override!r}: the value is not valid YAML.") from None
    _set_path(values, key, value, f"--set {override!r}")


def load_config(
    cls: type[C],
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    flags: Mapping[str, Any] | None = None,
) -> C:
    """`cls` from the YAML file `path` (defaults where None), then `flags` (dotted field path ->
    value; None means not given), then each `--set` override."""
    values = read_yaml_mapping(path) if path is not None else {}
    for key, value in (flags or {}).items():
        if value is not None:
            _set_path(values, key, value, f"option for {key}")
    for override in overrides:
        apply_override(values, override)
    return from_mapping(cls, values)


def add_config_arguments(parser: CliParser, example: str) -> None:
    """--config FILE and repeatable --set FIELD=VALUE, as every CLI takes them."""
    parser.add_argument("--config", help="YAML file of config fields (flags and --set override it)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        dest="overrides",
        help=f"override any config field, e.g. {example} (repeatable)",
    )


def _flag_type(hint):
    """The argparse `type` that turns a flag's text into the value a field of type `hint` takes."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _flag_type(next(a for a in args if a is not type(None)))
    if origin is tuple:
        item = _flag_type(args[0])
        return lambda text: tuple(item(part) for part in text.split(",") if part.strip())
    if hint in (int, float):
        return hint
    return str


def add_config_flags(parser, cls: type, *, skip: Sequence[str] = ()) -> dict[str, str]:
    """One `--field-name` flag per field of `cls` (help from the field's doc, with its default);
    returns {argparse dest: field name} for `flag_values`."""
    hints = typing.get_type_hints(cls)
    dests = {}
    for field in dataclasses.fields(cls):
        if field.name in skip or dataclasses.is_dataclass(hints[field.name]):
            continue
        flag = "--" + field.name.replace("_", "-")
        default = field.default if field.default is not dataclasses.MISSING else None
        doc = field.metadata.get("doc", "")
        shown = "" if default is None or "default" in doc else f" (default: {default})"
        described = (doc + shown) if doc else shown.strip(" ()")
        dest = f"config_{field.name}"
        if hints[field.name] is bool:
            parser.add_argument(
                flag, dest=dest, action="store_const", const=True, default=None, help=described
            )
        else:
            parser.add_argument(
                flag,
                dest=dest,
                type=_flag_type(hints[field.name]),
                default=None,
                metavar=field.name.upper(),
                help=described,
            )
        dests[dest] = field.name
    return dests


def flag_values(args, dests: Mapping[str, str]) -> dict[str, Any]:
    """The fields given on the command line (flags left out are not in the mapping)."""
    return {
        name: getattr(args, dest) for dest, name in dests.items() if getattr(args, dest) is not None
    }
