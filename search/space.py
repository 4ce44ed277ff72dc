"""Search space: TOML file -> validated ``SearchSpace`` -> ``TrainConfig`` from a trial.

This is the only module that calls ``trial.suggest_*``. A space file has one entry per
``TrainConfig`` field it touches; the field's type says how values are read:

    cell = "lstm"                                  # fixed, not searched
    [lr]            low = 1e-4, high = 1e-2, log = true   # float range
    [hidden_size]   low = 32, high = 512, log = true       # int range (optional step)
    [optimizer]     choices = ["adam", "adamw"]            # categorical

Fields the file does not mention keep the base config's value. Everything is checked
before a study is touched: every bound and choice must itself be a valid config value.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

import optuna

from model.config import TrainConfig, config_fields
from model.errors import ConfigError, UserInputError

__all__ = [
    "BUILTIN_SPACES",
    "Categorical",
    "FloatRange",
    "IntRange",
    "SearchSpace",
    "SpaceError",
    "load_space",
    "parse_space",
]

BUILTIN_SPACES = ("default", "quick")
_FIELD_TYPES: dict[str, type] = {
    f.name: {"int": int, "float": float, "str": str}[str(f.type)] for f in fields(TrainConfig)
}


# Fields a launch sets from its own flags (and stores as the study's settings).
_LAUNCH_FLAGS = {"seed": "--seed", "precision": "--precision"}


class SpaceError(UserInputError):
    """The space file is malformed or describes values no config can take."""


class FloatRange(NamedTuple):
    low: float
    high: float
    log: bool = False
    step: float | None = None


class IntRange(NamedTuple):
    low: int
    high: int
    log: bool = False
    step: int = 1


class Categorical(NamedTuple):
    choices: tuple[Any, ...]


Param = FloatRange | IntRange | Categorical


@dataclass(frozen=True)
class SearchSpace:
    params: dict[str, Param]  # searched, in file order
    fixed: dict[str, Any]  # set for every trial
    source: str = "<memory>"

    def suggest(
        self, trial: optuna.Trial, base: TrainConfig, only: Iterable[str] | None = None
    ) -> TrainConfig:
        """The one place a trial's values are drawn; returns a frozen config.

        ``only`` restricts drawing to some parameters (the others keep ``base``'s values):
        the V1 baseline records just those of its values that lie inside the space. The
        space's fixed values apply only to sampled trials: the baseline stays exactly V1
        (a space that fixes ``ema = 0.999`` must not give V1 an average it does not have).
        """
        values: dict[str, Any] = dict(self.fixed) if only is None else {}
        names = set(self.params if only is None else only)
        for name, spec in self.params.items():
            if name not in names:
                continue
            if isinstance(spec, Categorical):
                values[name] = trial.suggest_categorical(name, spec.choices)
            elif isinstance(spec, IntRange):
                values[name] = trial.suggest_int(name, spec.low, spec.high, step=spec.step, log=spec.log)
            else:
                values[name] = trial.suggest_float(name, spec.low, spec.high, step=spec.step, log=spec.log)
        return base.with_overrides(**values)

    def params_of(self, cfg: TrainConfig) -> dict[str, Any]:
        """The searched values of a config that lie inside the space (V1 has no weight
        decay, which a log range cannot hold), e.g. to enqueue the baseline as a trial."""
        values = {name: getattr(cfg, name) for name in self.params}
        return {k: v for k, v in values.items() if _contains(self.params[k], v)}

    def int_bounds(self, name: str, base: TrainConfig) -> tuple[int, int]:
        """Smallest and largest value an integer field can take in a trial of this space."""
        spec = self.params.get(name)
        if isinstance(spec, IntRange):
            return spec.low, spec.high
        if isinstance(spec, Categorical):
            return min(spec.choices), max(spec.choices)
        value = int(self.fixed.get(name, getattr(base, name)))
        return value, value

    def max_epochs(self, base: TrainConfig) -> int:
        """Largest epoch count a trial can have: the pruner's max resource."""
        return self.int_bounds("epochs", base)[1]

    def min_epochs(self, base: TrainConfig) -> int:
        """Smallest epoch count a trial can have: no pruner judges a trial before it ends."""
        return self.int_bounds("epochs", base)[0]

    def describe(self) -> list[str]:
        lines = [f"{k} = {v!r} (fixed)" for k, v in self.fixed.items()]
        for k, spec in self.params.items():
            if isinstance(spec, Categorical):
                lines.append(f"{k} in {list(spec.choices)}")
            else:
                scale = " log" if spec.log else ""
                lines.append(f"{k} in [{spec.low}, {spec.high}]{scale}")
        return lines


def load_space(name_or_path: str | os.PathLike[str] | None = None) -> SearchSpace:
    """A built-in space by name (default, quick) or a TOML file by path."""
    name = str(name_or_path) if name_or_path is not None else "default"
    if name in BUILTIN_SPACES:
        text = (Path(__file__).parent / "spaces" / f"{name}.toml").read_text()
        return parse_space(text, source=f"built-in space '{name}'")
    path = Path(name)
    if not path.is_file():
        raise SpaceError(
            f"space file {path} does not exist; pass a TOML file or one of {', '.join(BUILTIN_SPACES)}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpaceError(f"space file {path} is not UTF-8 text (byte {exc.start}); pass a TOML file") from None
    except OSError as exc:
        raise SpaceError(f"cannot read space file {path}: {exc.strerror or exc}") from None
    return parse_space(text, source=str(path))


def parse_space(text: str, source: str = "<memory>") -> SearchSpace:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpaceError(f"{source} is not valid TOML: {exc}") from None
    unknown = [k for k in raw if k not in _FIELD_TYPES]
    if unknown:
        raise SpaceError(
            f"{source}: unknown parameter {unknown[0]!r}; known: {', '.join(config_fields())}"
        )
    params: dict[str, Param] = {}
    fixed: dict[str, Any] = {}
    for name, entry in raw.items():
        where = f"{source}: {name}"
        if isinstance(entry, dict):
            params[name] = _parse_param(name, entry, where)
        else:
            fixed[name] = _check_value(name, entry, where)
    owned = [k for k in raw if k in _LAUNCH_FLAGS]
    if owned:
        raise SpaceError(f"{source}: {owned[0]} is set by `launch {_LAUNCH_FLAGS[owned[0]]}`, not by a space file "
                         "(it would silently override the flag); remove it from the file")
    if not params:
        raise SpaceError(f"{source} searches nothing; give at least one range or choices table")
    return SearchSpace(params=params, fixed=fixed, source=source)


def _parse_param(name: str, entry: dict[str, Any], where: str) -> Param:
    kind = _FIELD_TYPES[name]
    if "choices" in entry:
        _only_keys(entry, {"choices"}, where)
        choices = entry["choices"]
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{where}: choices must be a non-empty list")
        values = tuple(_check_value(name, c, where) for c in choices)
        # Compared after conversion: 1 and 1.0 of a float field are one choice.
        repeated = next((v for i, v in enumerate(values) if v in values[:i]), None)
        if repeated is not None or len(set(values)) != len(values):
            raise SpaceError(f"{where}: choices contain duplicates ({repeated!r} twice); list each value once")
        if len(values) == 1:
            raise SpaceError(f"{where}: a single choice searches nothing; write {name} = {values[0]!r} "
                             "to fix it, or list more choices")
        return Categorical(values)
    if kind is str:
        raise SpaceError(f"{where} is a string parameter; give choices = [...] or a fixed value")
    _only_keys(entry, {"low", "high", "log", "step"}, where)
    if "low" not in entry or "high" not in entry:
        raise SpaceError(f"{where}: a range needs both low and high (or give choices = [...])")
    low = _check_value(name, entry["low"], f"{where}.low")
    high = _check_value(name, entry["high"], f"{where}.high")
    log = entry.get("log", False)
    if not isinstance(log, bool):
        raise SpaceError(f"{where}.log must be true or false (got {log!r})")
    if low > high:
        raise SpaceError(f"{where}: range is inverted (low {low} > high {high}); swap them")
    if low == high:
        raise SpaceError(f"{where}: range holds one value (low = high = {low}); write {name} = {low!r} "
                         "to fix it, or widen the range")
    if log and low <= 0:
        raise SpaceError(f"{where}: a log range needs low > 0 (got {low})")
    step = entry.get("step")
    if step is not None:
        if log:
            raise SpaceError(f"{where}: step cannot be combined with log = true")
        step = _check_value(name, step, f"{where}.step")
        if step <= 0:
            raise SpaceError(f"{where}.step must be > 0 (got {step})")
    if step is not None:
        _check_step(low, high, step, where)
    if kind is int:
        _check_every_int(name, low, high, step or 1, where)
        return IntRange(low, high, log, step or 1)
    return FloatRange(float(low), float(high), log, None if step is None else float(step))


def _check_step(low: float, high: float, step: float, where: str) -> None:
    """Optuna would silently lower ``high`` to the last multiple of ``step`` (or draw only
    ``low`` for a step wider than the range): refuse a range the step does not divide."""
    count = (high - low) / step
    if step > high - low or not math.isclose(count, round(count), rel_tol=0, abs_tol=1e-9):
        raise SpaceError(f"{where}: step {step} does not divide the range {low}..{high} into whole steps; "
                         "pick low, high and step so that (high - low) / step is a whole number")


_MAX_CHECKED_VALUES = 4096  # an int range this small has every value checked (e.g. steps)


def _check_every_int(name: str, low: int, high: int, step: int, where: str) -> None:
    """Some int fields take only some values inside their bounds (steps must divide 784):
    a range over them would draw values that fail as trials, so every value is checked."""
    if (high - low) // step + 1 > _MAX_CHECKED_VALUES:
        return
    for value in range(low, high + 1, step):
        try:
            TrainConfig().with_overrides(**{name: value})
        except ConfigError as exc:
            raise SpaceError(f"{where}: the range {low}..{high} holds invalid values ({exc}); "
                             "list the valid ones as choices = [...]") from None


def _check_value(name: str, value: Any, where: str) -> Any:
    """One value must have the field's type and be a valid config value on its own."""
    kind = _FIELD_TYPES[name]
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise SpaceError(f"{where} must be {_article(kind)} (got {value!r})")
    if kind is float and not math.isfinite(value):
        raise SpaceError(f"{where} must be finite (got {value})")
    try:
        TrainConfig().with_overrides(**{name: value})
    except ConfigError as exc:
        raise SpaceError(f"{where}: {exc}") from None
    return value


def _contains(spec: Param, value: Any) -> bool:
    if isinstance(spec, Categorical):
        return value in spec.choices
    if not spec.low <= value <= spec.high:
        return False
    step = spec.step
    return not step or math.isclose((value - spec.low) / step, round((value - spec.low) / step))


def _only_keys(entry: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(entry) - allowed)
    if extra:
        raise SpaceError(f"{where}: unknown key {extra[0]!r}; allowed: {', '.join(sorted(allowed))}")


def _article(kind: type) -> str:
    return {int: "an integer", float: "a number", str: "a string"}[kind]
