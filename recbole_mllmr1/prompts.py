"""The recommendation prompt and the answer format, shared by evaluation, SFT, GRPO and CoT.

One answer format everywhere: the assistant turn ends with ``<answer>Title</answer>`` where
Title is one candidate's title as listed. The scorer reads the probability of each
candidate's title right after ``<answer>``, so what training teaches is exactly what
evaluation reads.
"""
import re

ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CANDIDATES_HEADER = "Candidates:\n"  # the candidate lines follow it, one per line

SYSTEM_PROMPT = (
    "You are a sequential recommender. From the items a user interacted with, in order, "
    "pick the one candidate the user is most likely to interact with next. "
    f"End your reply with {ANSWER_OPEN}title{ANSWER_CLOSE}, naming exactly one candidate by its title."
)

# The paper's inference does not think: chat templates with a thinking switch (Qwen3's
# enable_thinking) render the assistant turn with thinking off; templates without one ignore the key.
CHAT_TEMPLATE_KWARGS = {"enable_thinking": False}

_ANSWER_PATTERN = re.compile(re.escape(ANSWER_OPEN) + r"(.*?)" + re.escape(ANSWER_CLOSE), re.DOTALL)


def item_lines(item_texts):
    """``[item id] text`` lines in the given order (the history oldest first, the candidates shuffled)."""
    return "\n".join(f"[{item_token}] {text}" for item_token, text in item_texts)


def build_messages(history_texts, candidate_texts):
    """Chat messages (system + user) for one user and one candidate list."""
    user = (
        "The user's history, oldest first:\n"
        f"{item_lines(history_texts)}\n\n"
        f"{CANDIDATES_HEADER}{item_lines(candidate_texts)}\n\n"
        "Which candidate comes next?"
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def generation_prompt(tokenizer, messages):
    """``messages`` in the model's chat template (a tokenizer's or a processor's), the assistant turn opened, thinking off."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **CHAT_TEMPLATE_KWARGS)


def format_answer(title, rationale=None):
    """The assistant reply the model is trained on: optional ``<think>`` rationale, then the answer."""
    answer = f"{ANSWER_OPEN}{title}{ANSWER_CLOSE}"
    if rationale:
        return f"{THINK_OPEN}{rationale.strip()}{THINK_CLOSE}\n{answer}"
    return answer


def same_title(named, title):
    """Whether an answer names ``title``: case and runs of spaces are ignored."""
    return " ".join(named.split()).casefold() == " ".join(title.split()).casefold()


def parse_answer(completion, candidate_titles):
    """The index of the first candidate whose title the completion names, or None (a miss).

    Exactly one ``<answer>...</answer>`` must be present; case and runs of spaces are ignored.
    """
    matches = _ANSWER_PATTERN.findall(completion)
    if len(matches) != 1:
        return None
    return next((index for index, title in enumerate(candidate_titles) if same_title(matches[0], title)), None)
