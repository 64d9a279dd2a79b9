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
    parser: argparse.ArgumentParser,
    prefixes: tuple[str, ...] = ("--emulator-",),
    *,
    many: bool = False,
) -> None:
    """``--emulator-predictor``, ``--emulator-accuracy`` and ``--emulator-oracle`` (one option
    per name, spelled with each of ``prefixes``). ``many``: the predictor option takes a
    comma-separated list and is also spelled ``--predictors`` (the bench compares several)."""

    def names(stem: str) -> list[str]:
        return [prefix + stem for prefix in prefixes]

    if many:
        parser.add_argument(
            "--predictors",
            *names("predictor"),
            dest="emulator_predictors",
            default=None,
            metavar="LIST",
            help=f"comma-separated predictors to measure ({', '.join(PREDICTORS)})",
        )
    else:
        parser.add_argument(
            *names("predictor"),
            dest="emulator_predictor",
            choices=PREDICTORS,
            default="oracle",
            help="who writes the emulated suggestions: oracle (always right where the text is "
            "known), noisy (right with probability P), local (the local model)",
        )
    parser.add_argument(
        *names("accuracy"),
        dest="emulator_accuracy",
        type=_accuracy,
        default=DEFAULT_ACCURACY,
        metavar="P",
        help=f"noisy predictor: chance the first word is right (default {DEFAULT_ACCURACY})",
    )
    parser.add_argument(
        *names("oracle"),
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


def parse_name_list(text: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    """Names from a comma-separated option, in ``allowed``'s order; OptionError for others."""
    names = {n.strip() for n in text.split(",") if n.strip()}
    bad = sorted(names - set(allowed))
    if bad or not names:
        raise OptionError(
            f"unknown {what} {', '.join(bad) or repr(text)}; choose from {', '.join(allowed)}"
        )
    return tuple(n for n in allowed if n in names)


def predictor_choice(args: argparse.Namespace, default: tuple[str, ...] = ("oracle",)):
    """The validated choice from parsed arguments; :class:`OptionError` with a message the
    user can act on (an unreadable passage file, a local model that is not installed)."""
    if getattr(args, "emulator_predictors", None) is not None:
        names = parse_name_list(args.emulator_predictors, PREDICTORS, "predictor")
    elif hasattr(args, "emulator_predictors"):
        names = default
    else:
        names = (getattr(args, "emulator_predictor", None) or default[0],)
    path = getattr(args, "emulator_oracle", None)
    if path is not None:
        try:
            passages = load_oracle_file(path)
        except OracleFileError as exc:
            raise OptionError(str(exc)) from None
    else:
        from ..bench.traces import load_passages

        passages = tuple(load_passages().values())
    accuracy = getattr(args, "emulator_accuracy", DEFAULT_ACCURACY)
    return PredictorChoice(names, accuracy, passages, path)


def require_available(name: str) -> None:
    if name == "local" and not LocalPredictor.available():
        raise OptionError(LOCAL_MISSING)
