"""The recommendation prompt and the answer format, shared by evaluation, SFT, GRPO and CoT.

One answer format everywhere: the assistant turn ends with ``<answer>X</answer>`` where X
is a candidate's letter. The scorer reads the model's next-token distribution right after
``<answer>``, so what training teaches is exactly what evaluation reads.
"""
import re
import string

CANDIDATE_LABELS = string.ascii_uppercase
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CANDIDATES_HEADER = "Candidates:\n"  # the candidate lines follow it, one per line

SYSTEM_PROMPT = (
    "You are a sequential recommender. From the items a user interacted with, in order, "
    "pick the one candidate the user is most likely to interact with next. "
    f"End your reply with {ANSWER_OPEN}letter{ANSWER_CLOSE}, naming exactly one candidate letter."
)

_ANSWER_PATTERN = re.compile(re.escape(ANSWER_OPEN) + r"\s*([A-Za-z])\s*" + re.escape(ANSWER_CLOSE))


def history_block(history_texts):
    """``[item id] text`` lines, oldest first."""
    return "\n".join(f"[{item_token}] {text}" for item_token, text in history_texts)


def candidate_block(candidate_texts):
    """``X. [item id] text`` lines, labelled A, B, C... in the given (already shuffled) order."""
    if len(candidate_texts) > len(CANDIDATE_LABELS):
        raise ValueError(
            f"{len(candidate_texts)} candidates in one prompt; at most {len(CANDIDATE_LABELS)} "
            "can be labelled. Lower `candidates_per_prompt`."
        )
    return "\n".join(
        f"{label}. [{item_token}] {text}"
        for label, (item_token, text) in zip(CANDIDATE_LABELS, candidate_texts)
    )


def build_messages(history_texts, candidate_texts):
    """Chat messages (system + user) for one user and one candidate list."""
    user = (
        "The user's history, oldest first:\n"
        f"{history_block(history_texts)}\n\n"
        f"{CANDIDATES_HEADER}{candidate_block(candidate_texts)}\n\n"
        "Which candidate comes next?"
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def format_answer(label, rationale=None):
    """The assistant reply the model is trained on: optional ``<think>`` rationale, then the answer."""
    answer = f"{ANSWER_OPEN}{label}{ANSWER_CLOSE}"
    if rationale:
        return f"{THINK_OPEN}{rationale.strip()}{THINK_CLOSE}\n{answer}"
    return answer


def parse_answer(completion, n_candidates):
    """The candidate index a completion names, or None when it names none (a miss)."""
    matches = _ANSWER_PATTERN.findall(completion)
    if len(matches) != 1:
        return None
    index = CANDIDATE_LABELS.find(matches[0].upper())
    return index if 0 <= index < n_candidates else None
