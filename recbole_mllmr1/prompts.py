"""The recommendation prompt and the answer format, shared by evaluation, SFT, GRPO and CoT.

One answer format everywhere: the assistant turn ends with ``<answer>Title</answer>`` where
Title is one candidate's title as listed. The scorer reads the probability of each
candidate's title right after ``<answer>``, so what training teaches is exactly what
evaluation reads.

Generative evaluation (``eval_scoring: generative``, the official code's) instead asks for one
reply that lists the best candidates, one per line inside ``<answer>...</answer>``, and reads
it with :func:`parse_ranked_list`.
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

RANKING_SYSTEM_PROMPT = (
    "You are a sequential recommender. From the items a user interacted with, in order, "
    "rank the candidates the user is most likely to interact with next. "
    f"End your reply with {ANSWER_OPEN}, then the titles of the candidates you rank, one per line, "
    f"best first, then {ANSWER_CLOSE}."
)

# The paper's inference does not think: chat templates with a thinking switch (Qwen3's
# enable_thinking) render the assistant turn with thinking off; templates without one ignore the key.
CHAT_TEMPLATE_KWARGS = {"enable_thinking": False}

_ANSWER_PATTERN = re.compile(re.escape(ANSWER_OPEN) + r"(.*?)" + re.escape(ANSWER_CLOSE), re.DOTALL)
# A ranked line may start with its rank or a bullet ("1. ", "2) ", "- "), and with a listed "[item id]".
_RANK_MARKER = re.compile(r"^(?:\d+\s*[.)]|[-*\u2022])\s+")
_LISTED_ID = re.compile(r"^\[([^\]]+)\]\s*")


def item_lines(item_texts):
    """``[item id] text`` lines in the given order (the history oldest first, the candidates shuffled)."""
    return "\n".join(f"[{item_token}] {text}" for item_token, text in item_texts)


def _recommendation_messages(system_prompt, history_texts, candidate_texts, question):
    user = (
        "The user's history, oldest first:\n"
        f"{item_lines(history_texts)}\n\n"
        f"{CANDIDATES_HEADER}{item_lines(candidate_texts)}\n\n"
        f"{question}"
    )
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": user}]


def build_messages(history_texts, candidate_texts):
    """Chat messages (system + user) for one user and one candidate list."""
    return _recommendation_messages(SYSTEM_PROMPT, history_texts, candidate_texts, "Which candidate comes next?")


def build_ranking_messages(history_texts, candidate_texts, count):
    """Chat messages asking for the ``count`` best candidates, best first (generative evaluation)."""
    question = f"Which {count} candidates come next? List their titles, best first, one per line."
    return _recommendation_messages(RANKING_SYSTEM_PROMPT, history_texts, candidate_texts, question)


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


def _normalised(text):
    return " ".join(text.split()).casefold()


def _named_positions(line, positions_by_id, positions_by_title):
    """Positions of the candidates one line names: a listed ``[item id]`` at its start decides,
    else the rest of the line as a title, else the line as a bare item id."""
    for text in dict.fromkeys([line.strip(), _RANK_MARKER.sub("", line.strip(), count=1)]):
        listed_id = _LISTED_ID.match(text)
        if listed_id:
            if _normalised(listed_id.group(1)) in positions_by_id:
                return positions_by_id[_normalised(listed_id.group(1))]
            text = text[listed_id.end() :]
        named = _normalised(text)
        if named in positions_by_title:
            return positions_by_title[named]
        if named in positions_by_id:
            return positions_by_id[named]
    return []


def parse_ranked_list(reply, candidate_ids, candidate_titles, count):
    """Positions (in the candidate list given) of the candidates ``reply`` ranks, best first, at most ``count``.

    The list is read inside ``<answer>...</answer>`` when the reply opens one (to the reply's end
    if it is not closed), else from the whole reply. Each line names one candidate by its title
    (case and runs of spaces ignored) or by its item id as prompts list it (``[id]`` at the line's
    start, the listed text after it then ignored, or the id alone); a leading rank or bullet
    (``1.``, ``2)``, ``-``) is ignored. Lines that name no candidate, or one already ranked, are
    skipped. A title shared by several candidates names the first of them not yet ranked.
    An empty or garbled reply ranks nothing.
    """
    if ANSWER_OPEN in reply:
        reply = reply.split(ANSWER_OPEN, 1)[1].split(ANSWER_CLOSE, 1)[0]
    positions_by_id, positions_by_title = {}, {}
    for position, (item_id, title) in enumerate(zip(candidate_ids, candidate_titles)):
        positions_by_id.setdefault(_normalised(item_id), []).append(position)
        positions_by_title.setdefault(_normalised(title), []).append(position)
    ranked = []
    for line in reply.splitlines():
        if len(ranked) == count:
            break
        position = next((p for p in _named_positions(line, positions_by_id, positions_by_title) if p not in ranked), None)
        if position is not None:
            ranked.append(position)
    return ranked
