"""The teacher's two prompts (pseudo-CoT, refinement) and the parser of the structured rationale.

The pseudo-CoT prompt shows the user's history and nothing else: no candidates (they hold
the target) and no later interaction. The refinement prompt shows only the teacher's own
notes, and with ``cot_refine_sees_target`` (the official code's choice) also the training
sample's target, so that the rationale leads to it; samples are training interactions only,
so no validation or test item ever reaches a teacher. A one-shot example from another domain (books) and the reply's line openers
(:data:`REFINE_SCAFFOLD`, written by teachers that can) keep small teachers on the four-step
format without lending them movie content.
"""
import re
from dataclasses import dataclass

from recbole_mllmr1.prompts import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN, item_lines

PSEUDO_COT_SYSTEM = "You analyse what a user likes, for a recommender system."
PSEUDO_COT_INSTRUCTION = (
    "Think step by step about this user's tastes: which genres, themes, eras and styles recur, "
    "how the interests change over time, and what kind of item the user probably wants next. "
    "Describe the kind of item; do not name a specific title."
)

REFINE_SYSTEM = "You turn notes about a user into a short structured rationale."
REFINE_INSTRUCTION = (
    "Rewrite these notes about a user as a structured rationale with four numbered steps: "
    "preference signals, next intent, 3 to 5 retrieval criteria (one per line, starting with '- '), "
    "and the profile of the likely next item."
)
TARGET_HINT = (
    "The item the user actually chose next is below: let the rationale lead to this kind of item, "
    "without naming its title."
)
_EXAMPLE_NOTES = (
    "The reader started with epic fantasy novels, then moved to shorter science fiction with strong "
    "female leads, and lately reads award-winning space operas."
)
STEP_NAMES = ("Preference signals", "Next intent", "Retrieval criteria", "Next-item profile")
MIN_CRITERIA, MAX_CRITERIA = 3, 5
# The refinement's line openers (see teachers.LineScaffold): the four headings, MIN_CRITERIA bullets.
REFINE_SCAFFOLD = (
    f"1. {STEP_NAMES[0]}:",
    f"2. {STEP_NAMES[1]}:",
    f"3. {STEP_NAMES[2]}:\n-",
    *["-"] * (MIN_CRITERIA - 1),
    f"4. {STEP_NAMES[3]}:",
)


@dataclass(frozen=True)
class Rationale:
    """The four steps of a refined rationale."""

    preference_signals: str
    next_intent: str
    retrieval_criteria: tuple
    next_item_profile: str

    def text(self):
        """The rationale as it goes inside ``<think>...</think>``: four numbered steps, criteria bulleted."""
        criteria = "\n".join(f"- {criterion}" for criterion in self.retrieval_criteria)
        return (
            f"1. {STEP_NAMES[0]}: {self.preference_signals}\n"
            f"2. {STEP_NAMES[1]}: {self.next_intent}\n"
            f"3. {STEP_NAMES[2]}:\n{criteria}\n"
            f"4. {STEP_NAMES[3]}: {self.next_item_profile}"
        )


_EXAMPLE_RATIONALE = Rationale(
    preference_signals="speculative fiction, epic worlds, strong female protagonists.",
    next_intent="another recent, acclaimed science fiction novel.",
    retrieval_criteria=("science fiction or space opera", "published recently", "award-winning or acclaimed", "a female lead"),
    next_item_profile="a recent, acclaimed space opera with a strong female protagonist.",
)


def pseudo_cot_messages(history_texts):
    """Chat messages asking the teacher to reason about a history of ``(item token, text)`` pairs."""
    user = f"A user interacted with these items, oldest first:\n{item_lines(history_texts)}\n\n{PSEUDO_COT_INSTRUCTION}"
    return [{"role": "system", "content": PSEUDO_COT_SYSTEM}, {"role": "user", "content": user}]


def refinement_messages(pseudo_cot, target_text=None):
    """Chat messages asking the teacher to restructure its own notes, with the one-shot example first.

    ``target_text``: the training sample's target as ``(item token, text)``, shown as the item the
    user chose next (``cot_refine_sees_target``); None shows the notes alone.
    """
    request = f"{REFINE_INSTRUCTION}\n\nNotes:\n{pseudo_cot.strip()}"
    if target_text is not None:
        request += f"\n\n{TARGET_HINT}\n{item_lines([target_text])}"
    return [
        {"role": "system", "content": REFINE_SYSTEM},
        {"role": "user", "content": f"{REFINE_INSTRUCTION}\n\nNotes:\n{_EXAMPLE_NOTES}"},
        {"role": "assistant", "content": _EXAMPLE_RATIONALE.text()},
        {"role": "user", "content": request},
    ]


class RationaleParseError(ValueError):
    """A refinement reply that does not hold the four steps; the message is the recorded drop reason."""


# A step line: "1. ...", "Step 2: ...", "**3)** ..." or a known heading such as "Next intent: ...".
_NUMBERED_LINE = re.compile(r"^\s*(?:step\s*)?([1-4])\s*[.):]\s*(.*)$", re.IGNORECASE)
_HEADINGS = (
    re.compile(r"^\s*(?:user\s+)?preference(?:\s+signals?)?\s*:\s*(.*)$", re.IGNORECASE),
    re.compile(r"^\s*next[\s-]*intent(?:ion)?\s*:\s*(.*)$", re.IGNORECASE),
    re.compile(r"^\s*retriev\w*\s+criteri(?:a|on)\s*:\s*(.*)$", re.IGNORECASE),
    re.compile(r"^\s*(?:(?:likely\s+)?next[\s-]*item\s+)?profile\s*:\s*(.*)$", re.IGNORECASE),
)
# "Preference signals: x" after a step number: the label before the colon is not content.
_LEADING_LABEL = re.compile(r"^[A-Za-z][A-Za-z' -]{0,40}:\s*")
_BULLET = re.compile(r"^\s*(?:[-*\u2022+]|[a-e][.)])\s+(.*)$")
_MARKUP = re.compile(r"\*\*|__|^#+\s*", re.MULTILINE)
_TAGS = re.compile(
    re.escape(ANSWER_OPEN) + r".*?" + re.escape(ANSWER_CLOSE)
    + "|" + "|".join(re.escape(tag) for tag in (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)),
    re.DOTALL,
)


def _clean(text):
    return " ".join(text.split()).strip(" \"'")


def _split_steps(reply):
    """``{step number: [lines]}``; steps must come in increasing order, so a sub-list "1." inside step 3 stays content."""
    steps, current = {}, None
    for line in reply.splitlines():
        step, body = None, None
        numbered = _NUMBERED_LINE.match(line)
        if numbered and int(numbered.group(1)) > (current or 0):
            step, body = int(numbered.group(1)), _LEADING_LABEL.sub("", numbered.group(2), count=1)
        else:
            for number, heading in enumerate(_HEADINGS, start=1):
                match = heading.match(line)
                if match and number > (current or 0):
                    step, body = number, match.group(1)
                    break
        if step is not None:
            current = step
            steps[step] = [body]
        elif current is not None:
            steps[current].append(line)
    return steps


def _criteria(lines):
    """Bulleted lines if any, else the step's text split on ';' or ','; de-duplicated, at most MAX_CRITERIA."""
    bullets = [match.group(1) for match in map(_BULLET.match, lines) if match]
    if bullets:
        items = bullets
    else:
        text = " ".join(lines)
        items = re.split(r";", text) if ";" in text else re.split(r",|\band\b", text)
    criteria = []
    for item in (_clean(item).rstrip(".") for item in items):
        if item and item.lower() not in (c.lower() for c in criteria):
            criteria.append(item)
    return tuple(criteria[:MAX_CRITERIA])


def parse_rationale(reply):
    """The :class:`Rationale` in a refinement reply, or :class:`RationaleParseError` saying what is missing.

    >>> parse_rationale("1. Preference signals: comedies\\n2. Next intent: a light film\\n"
    ...                 "3. Retrieval criteria: comedy; recent; short\\n4. Profile: a recent comedy").retrieval_criteria
    ('comedy', 'recent', 'short')
    """
    steps = _split_steps(_MARKUP.sub("", _TAGS.sub("", reply)))
    missing = [f"{number} ({STEP_NAMES[number - 1]})" for number in range(1, 5) if number not in steps]
    if missing:
        raise RationaleParseError(f"missing step(s) {', '.join(missing)}")
    texts = {number: _clean(" ".join(lines)) for number, lines in steps.items()}
    empty = [f"{number} ({STEP_NAMES[number - 1]})" for number in (1, 2, 4) if not texts[number]]
    if empty:
        raise RationaleParseError(f"empty step(s) {', '.join(empty)}")
    criteria = _criteria(steps[3])
    if len(criteria) < MIN_CRITERIA:
        raise RationaleParseError(
            f"step 3 ({STEP_NAMES[2]}) lists {len(criteria)} distinct criteria; {MIN_CRITERIA} to {MAX_CRITERIA} are needed"
        )
    rationale = Rationale(texts[1], texts[2], criteria, texts[4])
    _reject_copied_example(rationale)
    return rationale


def _reject_copied_example(rationale):
    """Small teachers sometimes repeat the one-shot example (about books) instead of the user: not a rationale."""

    def normal(text):
        return _clean(text).lower().rstrip(".")

    copied = [
        f"{number} ({STEP_NAMES[number - 1]})"
        for number, attribute in ((1, "preference_signals"), (2, "next_intent"), (4, "next_item_profile"))
        if normal(getattr(rationale, attribute)) == normal(getattr(_EXAMPLE_RATIONALE, attribute))
    ]
    example_criteria = {normal(c) for c in _EXAMPLE_RATIONALE.retrieval_criteria}
    if sum(normal(c) in example_criteria for c in rationale.retrieval_criteria) >= 2:
        copied.append(f"3 ({STEP_NAMES[2]})")
    if copied:
        raise RationaleParseError(f"step(s) {', '.join(copied)} copy the format example instead of describing the user")
