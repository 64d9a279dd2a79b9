"""A review in which Sonnet retracts a finding Haiku showed, on the emulator (for the editor
tests of ``finding_retracted``).

Haiku's label claims a span across a sentence end ("Monday. The budjet") and is shown at once
(a sure spelling finding). Sonnet is asked about the passage from the second sentence on (around
the numbers issue and its evidence), where only the word "budjet" is visible, and fixes that: the
router sees Sonnet contradict a finding already shown on the same span and retracts it (index 0),
then shows Sonnet's. The emulator's draws are fixed by the seed and the quotes; with
``RETRACTED_SEED`` Sonnet detects it (tests check that the retraction did happen).
"""

from __future__ import annotations

RETRACTED_SEED = 1
RETRACTED_TEXT = (
    "We met the whole team on Monday. The budjet is fine and the team agrees with it. "
    "The plan needs twelve people for the launch next week. "
    "We will hire five people in total, which covers the twelve we need.\n"
)
RETRACTED_LABELS = (
    {
        "class": "spelling",
        "quote": "Monday. The budjet",
        "replacement": "Monday. The budget",
        "problem": '"budjet" is misspelled.',
    },
    {
        "class": "spelling",
        "quote": "budjet",
        "replacement": "budget",
        "problem": '"budjet" is misspelled.',
    },
    {
        "class": "numbers",
        "quote": "five people in total",
        "replacement": "twelve people in total",
        "problem": "Five people do not cover the twelve needed.",
        "evidence": "twelve people for the launch",
    },
)
