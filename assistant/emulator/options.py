"""The predictor options every command that starts an emulator shares (``assistant serve
--emulator``, ``assistant bench``, ``python -m assistant.emulator``): one spelling, one check,
one error message for a bad passage file."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from .predictors import (
    DEFAULT_ACCURACY,
    LOCAL_MISSING,
    PREDICTORS,
    LocalPredictor,
    OracleFileError,
    load_oracle_file,
)


class OptionError(ValueError):
    """A predictor option the user must fix (the message says how)."""


def _accuracy(value: str) -> float:
    try:
        p = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0.0 <= p <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 1")
    return p


def add_predictor_arguments(
    parser: argparse.ArgumentParser, prefix: str = "--emulator-", *, many: bool = False
) -> None:
    """``{prefix}predictor``, ``{prefix}accuracy`` and ``{prefix}oracle``. ``many``: the
    predictor option takes a comma-separated list (the bench compares several)."""
    if many:
        parser.add_argument(
            f"{prefix}predictors",
            f"{prefix}predictor",
            dest="emulator_predictors",
            default=None,
            metavar="LIST",
            help=f"comma-separated predictors to measure ({', '.join(PREDICTORS)})",
        )
    else:
        parser.add_argument(
            f"{prefix}predictor",
            dest="emulator_predictor",
            choices=PREDICTORS,
            default="oracle",
            help="who writes the emulated suggestions: oracle (always right where the text is "
            "known), noisy (right with probability --emulator-accuracy), local (the local model)",
        )
    parser.add_argument(
        f"{prefix}accuracy",
        dest="emulator_accuracy",
        type=_accuracy,
        default=DEFAULT_ACCURACY,
        metavar="P",
        help=f"noisy predictor: chance the first word is right (default {DEFAULT_ACCURACY})",
    )
    parser.add_argument(
        f"{prefix}oracle",
        dest="emulator_oracle",
        default=None,
        metavar="FILE",
        help="plain-text passages (separated by blank lines) the oracle and noisy predictors "
        "know (default: the built-in typing passages)",
    )


@dataclass(frozen=True)
class PredictorChoice:
    predictors: tuple[str, ...]
    accuracy: float
    passages: tuple[str, ...]
    oracle_file: str | None


def parse_predictor_list(text: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if text is None:
        return default
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    bad = [n for n in names if n not in PREDICTORS]
    if bad or not names:
        raise OptionError(
            f"unknown predictor {', '.join(bad) or repr(text)}; choose from {', '.join(PREDICTORS)}"
        )
    return names


def predictor_choice(args: argparse.Namespace, default: tuple[str, ...] = ("oracle",)):
    """The validated choice from parsed arguments; :class:`OptionError` with a message the
    user can act on (an unreadable passage file, a local model that is not installed)."""
    if hasattr(args, "emulator_predictors"):
        names = parse_predictor_list(args.emulator_predictors, default)
    else:
        names = (getattr(args, "emulator_predictor", None) or default[0],)
    path = getattr(args, "emulator_oracle", None)
    if path is not None:
        try:
            passages = load_oracle_file(path)
        except OracleFileError as exc:
            raise OptionError(str(exc)) from None
    else:
        from ..traces import load_passages

        passages = tuple(load_passages().values())
    accuracy = getattr(args, "emulator_accuracy", DEFAULT_ACCURACY)
    return PredictorChoice(names, accuracy, passages, path)


def require_available(name: str) -> None:
    if name == "local" and not LocalPredictor.available():
        raise OptionError(LOCAL_MISSING)
