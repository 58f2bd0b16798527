"""CoT data construction: parsing, confidence, mixing, caching and leak-freedom of the teacher prompts."""
import hashlib
import json
import os

import numpy as np
import pytest
import torch

from recbole_mllmr1.cot import confidence
from recbole_mllmr1.cot.build import _cot_subset, build_mixed_grained_dataset, provenance_path
from recbole_mllmr1.cot.cache import JsonlCache, read_jsonl
from recbole_mllmr1.cot.mixing import injection_count, mix
from recbole_mllmr1.cot.teacher_prompts import (
    REFINE_SYSTEM,
    RationaleParseError,
    parse_rationale,
    pseudo_cot_messages,
    refinement_messages,
)
from recbole_mllmr1.cot.teachers import make_teacher
from recbole_mllmr1.prompts import parse_answer
from recbole_mllmr1.training_samples import draw_training_samples
from tests.conftest import TINY_CONFIG
from tests.test_model import build

# Every CoT key, so the tests do not depend on the yaml's defaults (the runs below set ``cot_teacher``).
COT_CONFIG = {
    "cot_teacher_model": None,
    "cot_num_samples": 4,
    "cot_ratio": 0.25,
    "cot_min_gain": None,
    "cot_min_prob": None,
    "cot_max_new_tokens": 48,
    "cot_temperature": 0.0,
    "cot_batch_size": 2,
    "cot_cache_dir": None,
    "train_samples": 12,
    "train_candidates": 5,
}

WELL_FORMED = (
    "1. Preference signals: dark thrillers and 1970s crime films.\n"
    "2. Next intent: another tense crime story.\n"
    "3. Retrieval criteria:\n- crime or thriller\n- tense mood\n- 1970s or later\n"
    "4. Next-item profile: a tense 1970s crime thriller."
)


# ---- parsing -----------------------------------------------------------------------------
def test_a_well_formed_refinement_parses_into_four_steps_and_round_trips():
    rationale = parse_rationale(WELL_FORMED)
    assert rationale.preference_signals == "dark thrillers and 1970s crime films."
    assert rationale.next_intent == "another tense crime story."
    assert rationale.retrieval_criteria == ("crime or thriller", "tense mood", "1970s or later")
    assert rationale.next_item_profile == "a tense 1970s crime thriller."
    assert parse_rationale(rationale.text()) == rationale


@pytest.mark.parametrize(
    "reply",
    [
        "**Step 1:** Preference signals: comedies\n**Step 2:** Next intent: light\n**Step 3:** Retrieval criteria: funny; short; recent\n**Step 4:** Profile: a short comedy",
        "Preference signals: comedies\nNext intent: light\nRetrieval criteria:\n* funny\n* short\n* recent\nNext-item profile: a short comedy",
        "Sure!\n1. Preference signals: comedies\n2. Next-intent: light\n3. Retrieve criteria: funny, short, and recent\n4. Profile: a short comedy <answer>B</answer>",
    ],
    ids=["markdown-steps", "headings-only", "commas-and-chatter"],
)
def test_parser_accepts_common_variants_of_the_format(reply):
    rationale = parse_rationale(reply)
    assert rationale.retrieval_criteria == ("funny", "short", "recent")
    assert rationale.next_item_profile == "a short comedy"
    assert "<answer>" not in rationale.text()


@pytest.mark.parametrize(
    "reply, reason",
    [
        ("1. Preference signals: comedies\n2. Next intent: light\n3. Retrieval criteria: a; b; c", r"missing step\(s\) 4"),
        ("1. Preference signals: comedies, comedies, comedies, comedies", r"missing step\(s\) 2 .*3 .*4"),
        ("1. Preference signals: x\n2. Next intent: y\n3. Retrieval criteria: only one\n4. Profile: z", r"lists 1 distinct criteria"),
        ("1. Preference signals:\n2. Next intent: y\n3. Retrieval criteria: a; b; c\n4. Profile: z", r"empty step\(s\) 1"),
        ("1. Preference signals: speculative fiction, epic worlds, strong female protagonists.\n2. Next intent: x\n"
         "3. Retrieval criteria:\n- Science fiction or space opera\n- published recently\n- y\n4. Profile: z", r"step\(s\) 1 .*3 .*copy the format example"),
    ],
    ids=["no-profile", "a-loop", "one-criterion", "empty-step", "copied-example"],
)
def test_unparseable_refinements_raise_with_the_reason(reply, reason):
    with pytest.raises(RationaleParseError, match=reason):
        parse_rationale(reply)


def test_more_than_five_criteria_keep_the_first_five():
    reply = WELL_FORMED.replace("- 1970s or later\n", "- 1970s or later\n- c4\n- c5\n- c6\n")
    assert parse_rationale(reply).retrieval_criteria[-2:] == ("c4", "c5")


# ---- confidence and mixing (crafted numbers) -------------------------------------------------
def test_confidence_gain_is_the_log_prob_difference_and_rank_counts_ties_against_the_target():
    with_rationale = np.log([0.5, 0.2, 0.2, 0.1])
    without = np.log([0.1, 0.4, 0.4, 0.1])
    measured = confidence.measure(with_rationale, without, target_index=1)
    assert measured.probability == pytest.approx(0.2)
    assert measured.gain == pytest.approx(np.log(0.2) - np.log(0.4))
    assert measured.rank == 3  # below A and tied with C
    assert confidence.drop_reason(measured, min_gain=0.0, min_prob=None).startswith("gain -0.6931 <= cot_min_gain")
    assert confidence.drop_reason(measured, min_gain=-1.0, min_prob=0.3).startswith("probability 0.2000 < cot_min_prob")
    assert confidence.drop_reason(measured, min_gain=-1.0, min_prob=0.2) is None


def test_mixing_keeps_every_plain_row_and_injects_cot_rows_at_the_ratio():
    plain = [{"kind": "plain", "id": i} for i in range(40)]
    reliable = [{"kind": "cot", "id": i} for i in range(20)]
    rows, injected = mix(plain, reliable, ratio=0.25, seed=7)
    assert len(injected) == 10 and sum(row["kind"] == "cot" for row in rows) == 10
    assert sorted(row["id"] for row in rows if row["kind"] == "plain") == list(range(40))
    assert mix(plain, reliable, 0.25, 7) == (rows, injected)  # seeded
    assert mix(plain, reliable, 0.25, 8)[1] != injected
    assert injection_count(40, 5, 0.25) == 5  # capped by the reliable ones
    assert injection_count(40, 20, 0.0) == 0
    with pytest.raises(ValueError, match=r"cot_ratio \[-0.5\]"):
        injection_count(40, 20, -0.5)


def test_cache_repairs_a_partial_last_line(tmp_path):
    path = str(tmp_path / "cache.jsonl")
    cache = JsonlCache(path)
    cache.put("a", [1.0], stage="test")
    with open(path, "a") as handle:
        handle.write('{"key": "b", "val')  # a crash mid-write
    reloaded = JsonlCache(path)
    assert reloaded.get("a") == [1.0] and "b" not in reloaded
    reloaded.put("b", "ok")
    assert JsonlCache(path).get("b") == "ok"


# ---- the pipeline on a tiny dataset ------------------------------------------------------
class ScriptedTeacher:
    """Echoes the history as its "pseudo-CoT" and answers every refinement in the four-step format.

    Records every conversation it is sent; ``fail_after`` raises on that call (a crash);
    ``unparseable_users`` get a refinement without step 4.
    """

    identity = "scripted-teacher"
    batch_size = 2

    def __init__(self, fail_after=None, unparseable_users=()):
        self.fail_after = fail_after
        self.unparseable_users = unparseable_users
        self.calls = 0
        self.conversations = []

    def generate(self, conversations, settings, scaffold=()):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("simulated crash")
        self.calls += 1
        self.conversations.extend(conversations)
        replies = []
        for messages in conversations:
            notes = messages[-1]["content"]
            if messages[0]["content"] != REFINE_SYSTEM:
                replies.append(f"Notes on this user. {notes}")
            elif any(f"[{user}]" in notes for user in self.unparseable_users):
                replies.append("1. Preference signals: comedies\n2. Next intent: more")
            else:
                replies.append(WELL_FORMED)
        return replies


class PromptHashScorer:
    """A deterministic stand-in for the LLM scorer: log-probs from a hash of the prompt."""

    batch_size = 4

    def __init__(self):
        self.prompts_scored = 0

    def log_probs(self, prompts, candidate_titles):
        self.prompts_scored += len(prompts)
        results = []
        for prompt, titles in zip(prompts, candidate_titles):
            digest = hashlib.sha256(prompt.encode()).digest()
            results.append(torch.log_softmax(torch.tensor([float(b) / 64 for b in digest[: len(titles)]]), dim=0))
        return results


def cot_run(data_path, llm_dir):
    """Config, model and split datasets of a run on the tiny dataset whose scorer and teacher are ``llm_dir``."""
    config, model, train_data, valid_data, test_data = build(
        "tiny", {**TINY_CONFIG, **COT_CONFIG, "data_path": data_path, "llm_path": llm_dir, "cot_teacher": llm_dir}
    )
    return config, model, train_data._dataset, valid_data._dataset, test_data._dataset


@pytest.fixture(scope="module")
def tiny_cot(tiny_data_path, tiny_llm_dir):
    """The pipeline's plumbing: a tiny random-weight LLM scores and teaches."""
    return cot_run(tiny_data_path, tiny_llm_dir)


@pytest.fixture(scope="module")
def real_cot(tiny_data_path, default_llm_dir):
    """The real default model scores and teaches (tests marked slow)."""
    return cot_run(tiny_data_path, default_llm_dir)


@pytest.fixture
def cot_config(request, tmp_path, monkeypatch):
    """The run's config (``real_cot``'s when the test uses it, else ``tiny_cot``'s) with a fresh cache folder;
    changes made through it are undone after the test."""
    config = request.getfixturevalue("real_cot" if "real_cot" in request.fixturenames else "tiny_cot")[0]
    monkeypatch.setitem(config.final_config_dict, "cot_cache_dir", str(tmp_path / "cot"))

    def update(**values):
        for key, value in values.items():
            monkeypatch.setitem(config.final_config_dict, key, value)
        return config

    return update


def _cot_samples(config, model, train_dataset):
    samples = draw_training_samples(model, train_dataset, config["train_samples"], config["train_candidates"], config["seed"])
    return [samples[i] for i in _cot_subset(len(samples), config["cot_num_samples"], config["seed"])]


def test_teacher_prompts_never_show_the_target_or_held_out_items(tiny_cot, cot_config, monkeypatch):
    _, model, train_dataset, valid_dataset, test_dataset = tiny_cot
    config = cot_config(cot_num_samples=8)
    monkeypatch.setattr(model, "title_log_probs", PromptHashScorer().log_probs)
    teacher = ScriptedTeacher()
    build_mixed_grained_dataset(config, model, train_dataset, show_progress=False, teacher=teacher)

    held_out = {}
    for split in (valid_dataset, test_dataset):
        for user, item in zip(split.inter_feat[model.USER_ID].tolist(), split.inter_feat[model.ITEM_ID].tolist()):
            held_out.setdefault(user, set()).add(item)
    training_sequence = {}  # each user's training targets in time order
    for user, item in zip(train_dataset.inter_feat[model.USER_ID].tolist(), train_dataset.inter_feat[model.ITEM_ID].tolist()):
        training_sequence.setdefault(user, []).append(item)
    samples = _cot_samples(config, model, train_dataset)
    assert len(samples) == 8
    expected = {}
    for sample in samples:
        sequence = training_sequence[sample.user_id]
        later = set(sequence[sequence.index(sample.target) :])  # the target and everything after it
        pseudo = pseudo_cot_messages([model.item_entry(i) for i in sample.history])
        refinement = refinement_messages(f"Notes on this user. {pseudo[-1]['content']}")  # the scripted echo
        expected[json.dumps(pseudo)] = expected[json.dumps(refinement)] = later | held_out[sample.user_id]
    sent = [json.dumps(messages) for messages in teacher.conversations]
    assert set(sent) == set(expected)  # the teacher saw these prompts and nothing else
    for conversation, forbidden in expected.items():
        for item in forbidden:
            token, text = model.item_entry(item)
            assert f"[{token}]" not in conversation and text not in conversation


def test_two_builds_give_identical_files_that_datasets_loads(tiny_cot, cot_config, tmp_path, monkeypatch):
    from datasets import load_dataset

    _, model, train_dataset, _, _ = tiny_cot
    monkeypatch.setattr(model, "title_log_probs", PromptHashScorer().log_probs)
    config = cot_config(cot_num_samples=2, train_samples=8, cot_min_gain=-100.0)  # keep both rationales: CoT rows to check
    first = build_mixed_grained_dataset(config, model, train_dataset, show_progress=False, teacher=ScriptedTeacher())
    config = cot_config(cot_cache_dir=str(tmp_path / "again"))
    second = build_mixed_grained_dataset(config, model, train_dataset, show_progress=False, teacher=ScriptedTeacher())
    assert first != second
    for a, b in ((first, second), (provenance_path(first), provenance_path(second))):
        with open(a, "rb") as left, open(b, "rb") as right:
            assert left.read() == right.read()

    rows = load_dataset("json", data_files=first, split="train")
    assert {"prompt", "completion", "kind", "user", "target", "confidence", "gain", "rank", "kept", "reason"} <= set(rows.column_names)
    assert rows["kind"].count("plain") == 8 and rows["kind"].count("cot") == 2  # round(0.25 * 8), 2 reliable
    for row in rows:
        assert parse_answer(row["completion"][0]["content"], [row["target_title"]]) == 0
    cot = next(row for row in rows if row["kind"] == "cot")
    assert cot["completion"][0]["content"].startswith("<think>1. Preference signals:")
    assert cot["kept"] and cot["reason"].startswith("kept")


def test_recorded_confidence_is_the_scoring_models(tiny_cot, cot_config):
    """gain = log P(target | rationale) - log P(target), P and rank as the recommender's LLM scores them."""
    _, model, train_dataset, _, _ = tiny_cot
    config = cot_config(cot_num_samples=1, train_samples=4, cot_min_gain=-100.0, cot_ratio=1.0)
    path = build_mixed_grained_dataset(config, model, train_dataset, show_progress=False, teacher=ScriptedTeacher())
    cot = next(row for row in read_jsonl(path) if row["kind"] == "cot")
    rationale_prefix = cot["completion"][0]["content"].split("<answer>")[0]
    with_prompt = model.render_prompt(cot["prompt"], rationale_prefix)
    without_prompt = model.render_prompt(cot["prompt"])
    (sample,) = _cot_samples(config, model, train_dataset)
    titles = [model.item_title(item) for item in sample.candidates]
    with_rationale, without = model.title_log_probs([with_prompt, without_prompt], [titles, titles])
    target = sample.target_index
    assert titles[target] == cot["target_title"]
    assert cot["gain"] == pytest.approx(float(with_rationale[target] - without[target]), abs=1e-4)
    assert cot["confidence"] == pytest.approx(float(with_rationale[target].exp()), abs=1e-4)
    assert cot["rank"] == int((with_rationale >= with_rationale[target]).sum())


def test_resume_after_a_crash_asks_the_teacher_only_for_the_rest(tiny_cot, cot_config, monkeypatch):
    _, model, train_dataset, _, _ = tiny_cot
    config = cot_config(cot_num_samples=6)
    monkeypatch.setattr(model, "title_log_probs", PromptHashScorer().log_probs)
    crashing = ScriptedTeacher(fail_after=2)  # 2 batches of 2 pseudo-CoTs done, then the crash
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_mixed_grained_dataset(config, model, train_dataset, show_progress=False, teacher=crashing)
    resumed = ScriptedTeacher()
    path = build_mixed_grained_dataset(config, model, train_dataset, show_progress=False, teacher=resumed)
    assert len(crashing.conversations) == 4
    assert len(resumed.conversations) == 2 + 6  # the last 2 pseudo-CoTs, then every refinement
    assert not set(map(json.dumps, crashing.conversations)) & set(map(json.dumps, resumed.conversations))
    assert len(read_jsonl(provenance_path(path))) == 6


def test_a_changed_ratio_or_threshold_only_remixes(tiny_cot, cot_config, monkeypatch):
    _, model, train_dataset, _, _ = tiny_cot
    config = cot_config()
    scorer = PromptHashScorer()
    monkeypatch.setattr(model, "title_log_probs", scorer.log_probs)
    first = build_mixed_grained_dataset(config, model, train_dataset, show_progress=False, teacher=ScriptedTeacher())
    scored = scorer.prompts_scored
    assert scored == 8  # 4 samples, with and without the rationale
    idle = ScriptedTeacher(fail_after=0)  # any teacher call would raise
    assert build_mixed_grained_dataset(config, model, train_dataset, show_progress=False, teacher=idle) == first
    for change in ({"cot_ratio": 0.5}, {"cot_min_gain": 0.1}, {"cot_min_prob": 0.05}):
        path = build_mixed_grained_dataset(cot_config(**change), model, train_dataset, show_progress=False, teacher=idle)
        assert path != first and os.path.exists(path)
    assert scorer.prompts_scored == scored


def test_unparseable_replies_are_recorded_as_dropped_never_trained_on(tiny_cot, cot_config, monkeypatch):
    _, model, train_dataset, _, _ = tiny_cot
    config = cot_config(cot_min_gain=-100.0, cot_ratio=1.0)
    monkeypatch.setattr(model, "title_log_probs", PromptHashScorer().log_probs)
    samples = _cot_samples(config, model, train_dataset)
    broken = model.item_token(samples[0].history[-1])
    path = build_mixed_grained_dataset(config, model, train_dataset, show_progress=False, teacher=ScriptedTeacher(unparseable_users=[broken]))
    provenance = read_jsonl(provenance_path(path))
    dropped = [row for row in provenance if not row["kept"]]
    assert dropped and all(row["reason"].startswith("dropped: unparseable refinement: missing step(s) 3") for row in dropped)
    assert all(row["rationale"] is None and row["confidence"] is None for row in dropped)
    cot_rows = [row for row in read_jsonl(path) if row["kind"] == "cot"]
    assert len(cot_rows) == len(provenance) - len(dropped)


@pytest.mark.slow
def test_a_rationale_naming_the_target_raises_its_probability_more_than_one_naming_another(real_cot, tmp_path):
    """The real model reads the rationale: naming the target raises its probability (a property of the model)."""
    _, model, train_dataset, _, _ = real_cot
    samples = draw_training_samples(model, train_dataset, 3, 5, seed=3)
    prompts, titles, index = [], [], []
    for sample in samples:
        other = sample.candidates[(sample.target_index + 1) % len(sample.candidates)]
        for named in (sample.target, other):
            rationale = f"The user will pick {model.item_title(named)}. Answer: {model.item_title(named)}."
            with_prompt, without_prompt = confidence.scoring_prompts(model, sample, rationale)
            assert with_prompt.endswith(f"<think>{rationale}</think>\n<answer>") and without_prompt.endswith("assistant\n<answer>")
            prompts += [with_prompt, without_prompt]
            titles += [[model.item_title(item) for item in sample.candidates]] * 2
            index.append(sample.target_index)
    cache = JsonlCache(str(tmp_path / "scores.jsonl"))
    log_probs = confidence.cached_log_probs(model, confidence.scorer_identity(model), prompts, titles, cache)
    assert len(cache) == 3 * 2 + 3  # the prompt without a rationale is scored once per sample
    gains = [confidence.measure(log_probs[2 * k], log_probs[2 * k + 1], i).gain for k, i in enumerate(index)]
    assert np.mean(gains[0::2]) > np.mean(gains[1::2])


@pytest.mark.slow
def test_the_default_teacher_builds_a_trainable_file(real_cot, cot_config):
    from datasets import load_dataset

    _, model, train_dataset, _, _ = real_cot
    config = cot_config(cot_num_samples=3, train_samples=6, cot_min_gain=-100.0, cot_ratio=1.0, cot_max_new_tokens=96, cot_batch_size=3)
    path = build_mixed_grained_dataset(config, model, train_dataset, show_progress=False)
    provenance = read_jsonl(provenance_path(path))
    assert len(provenance) == 3 and all(row["pseudo_cot"].strip() for row in provenance)
    assert all(row["reason"].startswith(("kept", "dropped: unparseable")) for row in provenance)
    rows = load_dataset("json", data_files=path, split="train")
    assert rows["kind"].count("plain") == 6 and rows["kind"].count("cot") == sum(row["kept"] for row in provenance)
    for row in rows:
        assert parse_answer(row["completion"][0]["content"], [row["target_title"]]) == 0


# ---- teacher backends --------------------------------------------------------------------
def test_line_scaffold_writes_each_opener_after_a_line_and_then_ends_the_reply(tiny_llm_dir):
    from recbole_mllmr1.cot.teachers import LineScaffold
    from recbole_mllmr1.llm import load_tokenizer

    tokenizer = load_tokenizer(tiny_llm_dir)  # SmolLM2's tokenizer
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"][0]
    word = tokenizer(" word", add_special_tokens=False)["input_ids"][0]
    scaffold = LineScaffold(tokenizer, ["A:", "B:", "C:"], frozenset([newline]), prompt_length=2, max_line_tokens=3)
    ids = torch.tensor([[7, 8]])
    wanted = iter([word, newline] + [word] * 20)  # a line of one word, then a line that never ends
    while int(ids[0, -1]) != tokenizer.eos_token_id:
        scores = scaffold(ids, torch.zeros(1, len(tokenizer)))
        forced = int(torch.isfinite(scores).sum()) == 1
        if not forced:  # the model may end the reply only on the last line
            assert (scores[0, tokenizer.eos_token_id] > -float("inf")) == ("C:" in tokenizer.decode(ids[0, 2:]))
        token = int(scores.argmax()) if forced else next(wanted)
        ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    assert tokenizer.decode(ids[0, 2:-1]) == " word\nB: word word word\nC: word word word"


def test_a_missing_vllm_gets_an_install_hint():
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    with pytest.raises(ImportError, match=r"pip install 'recbole-mllmr1\[vllm\]'"):
        make_teacher("vllm:Qwen/Qwen2.5-7B-Instruct")


def test_an_endpoint_teacher_needs_a_model_name():
    with pytest.raises(ValueError, match=r"set cot_teacher_model"):
        make_teacher("http://127.0.0.1:9/v1")


class StubChatServer:
    """An OpenAI-compatible ``/v1/chat/completions`` on 127.0.0.1 (port 0), served from a thread.

    ``reply(payload) -> str`` writes each answer; the first ``failures`` requests get ``status``.
    """

    def __init__(self, reply, failures=0, status=503):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append((self.path, payload))
                if len(stub.requests) <= failures or self.path != "/v1/chat/completions":
                    self.send_response(status if self.path == "/v1/chat/completions" else 404)
                    self.end_headers()
                    self.wfile.write(b'{"error": "stub"}')
                    return
                body = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply(payload)}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        import threading

        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _scripted_reply(payload):
    """The stub server's teacher: ScriptedTeacher's replies, without the prefill an endpoint cannot do."""
    return ScriptedTeacher().generate([payload["messages"]], None)[0]


def test_endpoint_teacher_posts_chat_completions_and_retries_server_errors():
    from recbole_mllmr1.cot.teachers import GenerationSettings

    conversations = [[{"role": "user", "content": f"question {i}"}] for i in range(3)]
    with StubChatServer(lambda payload: "echo " + payload["messages"][-1]["content"], failures=1) as server:
        teacher = make_teacher(server.base_url + "/v1/", batch_size=2, endpoint_model="stub-model")
        teacher.backoff_s = 0.01
        replies = teacher.generate(conversations, GenerationSettings(max_new_tokens=16, temperature=0.0, seed=5), scaffold=("1. X:", "2. Y:"))
    assert replies == ["echo question 0", "echo question 1", "echo question 2"]
    assert len(server.requests) == 4  # one 503, retried
    path, payload = server.requests[-1]
    assert path == "/v1/chat/completions"
    assert {k: payload[k] for k in ("model", "max_tokens", "temperature", "seed")} == {"model": "stub-model", "max_tokens": 16, "temperature": 0.0, "seed": 5}
    assert sorted(p["messages"][-1]["content"] for _, p in server.requests[1:]) == ["question 0", "question 1", "question 2"]
    assert teacher.identity == f"http:{server.base_url}/v1/chat/completions|model=stub-model"


def test_endpoint_teacher_reports_a_client_error_at_once():
    from recbole_mllmr1.cot.teachers import GenerationSettings

    with StubChatServer(lambda payload: "never", failures=5, status=400) as server:
        teacher = make_teacher(server.base_url, endpoint_model="stub-model")
        with pytest.raises(RuntimeError, match=r"answered HTTP 400"):
            teacher.generate([[{"role": "user", "content": "q"}]], GenerationSettings(8, 0.0, 0))
    assert len(server.requests) == 1


def test_build_cot_command_with_an_endpoint_teacher(tiny_data_path, tiny_llm_dir, tmp_path, capsys):
    import yaml

    from recbole_mllmr1.cli import main

    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(yaml.safe_dump({**TINY_CONFIG, **COT_CONFIG, "cot_cache_dir": str(tmp_path / "cot"), "llm_path": tiny_llm_dir}))
    with StubChatServer(_scripted_reply) as server:
        status = main(
            ["build-cot", "--dataset", "tiny", "--data-path", tiny_data_path, "--teacher", server.base_url,
             "--teacher-model", "stub-model", "--num-samples", "1", "--ratio", "0.5", "--min-gain", "-100",
             "--config_files", str(config_file), "--no-progress"]
        )
    assert status == 0
    assert len(server.requests) == 2  # the pseudo-CoT and its refinement
    path = capsys.readouterr().out.split("training file: ")[1].split("\n")[0]
    assert str(tmp_path / "cot") in path
    kinds = [row["kind"] for row in read_jsonl(path)]
    assert kinds.count("plain") == 12 and kinds.count("cot") == 1
    assert len(read_jsonl(provenance_path(path))) == 1
