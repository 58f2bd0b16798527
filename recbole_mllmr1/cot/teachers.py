"""Teachers: chat models that write the pseudo-CoT and refine it, behind one small interface.

A teacher has ``identity`` (a string that names everything about it that changes its replies,
part of every cache key), ``batch_size`` and ``generate(conversations, settings, scaffold)``,
which returns one reply per conversation, in order. ``scaffold`` holds line openers for a reply
with a fixed layout (the rationale's headings): the local teacher writes each opener itself and
lets the model fill the line, so even a 135M model keeps the layout; vLLM opens the reply with
the first one; the endpoint teacher (the OpenAI API cannot prefill) relies on the instruction.
Every reply includes the openers the teacher wrote; the parser accepts all three.

Backends, picked by :func:`make_teacher` from the ``cot_teacher`` value:
- a HF model id, a local checkpoint folder or ``smollm2-135m``: transformers ``generate``;
- ``http(s)://host:port``: an OpenAI-compatible server, ``POST {base}/v1/chat/completions``;
- ``vllm:<model>``: vLLM offline inference (GPU), imported only when used.
"""
import functools
import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import torch
from transformers import LogitsProcessor

from recbole_mllmr1.llm import DEFAULT_LLM, load_text_generator
from recbole_mllmr1.optional_packages import require_vllm
from recbole_mllmr1.prompts import generation_prompt

# Greedy decoding makes small models loop ("thrillers, thrillers, ..."); a mild penalty stops it.
REPETITION_PENALTY = 1.1


@dataclass(frozen=True)
class GenerationSettings:
    """How replies are decoded: part of every cache key."""

    max_new_tokens: int
    temperature: float  # 0 = greedy
    seed: int

    def as_dict(self):
        """The settings that change replies: greedy decoding ignores the seed, so a new seed keeps greedy replies cached."""
        settings = asdict(self)
        if self.temperature == 0:
            del settings["seed"]
        return settings


class LineScaffold(LogitsProcessor):
    """Forces a reply's line openers: ``openers[0]`` is already in the prompt, each later one is forced
    after the model ends a line, then the reply ends after the last line; the model cannot end it sooner.

    A line also ends after ``max_line_tokens`` tokens without a newline (a small model in a loop),
    so every opener fits within ``max_new_tokens``. One instance per ``generate`` call: it keeps
    per-row state.
    """

    def __init__(self, tokenizer, openers, newline_token_ids, prompt_length, max_line_tokens):
        self.forced = [tokenizer(opener, add_special_tokens=False)["input_ids"] for opener in openers[1:]]
        self.newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
        self.newline_token_ids = newline_token_ids
        self.eos = tokenizer.eos_token_id
        self.prompt_length = prompt_length
        self.max_line_tokens = max_line_tokens
        self.rows = None

    def __call__(self, input_ids, scores):
        if self.rows is None:
            self.rows = [{"next_opener": 0, "pending": [], "line_tokens": 0} for _ in range(len(input_ids))]
        for row, state in enumerate(self.rows):
            if not state["pending"]:
                line_ended = input_ids.shape[1] > self.prompt_length and int(input_ids[row, -1]) in self.newline_token_ids
                if line_ended or state["line_tokens"] >= self.max_line_tokens:
                    if state["next_opener"] < len(self.forced):
                        state["pending"] = ([] if line_ended else list(self.newline)) + list(self.forced[state["next_opener"]])
                        state["next_opener"] += 1
                    else:
                        state["pending"] = [self.eos]
                    state["line_tokens"] = 0
            if state["pending"]:
                token = state["pending"].pop(0)
                scores[row] = float("-inf")
                scores[row, token] = 0.0
            else:
                state["line_tokens"] += 1
                if state["next_opener"] < len(self.forced):
                    scores[row, self.eos] = float("-inf")
        return scores


class LocalTeacher:
    """A transformers chat model, loaded on first use (a fully cached build never loads it): a causal LM,
    or a vision-language model such as the paper's Qwen3-VL, prompted with text only."""

    def __init__(self, llm_path, device="cpu", batch_size=8):
        expanded = os.path.expanduser(str(llm_path or DEFAULT_LLM))
        self.llm_path = os.path.abspath(expanded) if os.path.isdir(expanded) else expanded
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.identity = f"hf:{self.llm_path}|repetition_penalty={REPETITION_PENALTY}"

    @functools.cached_property
    def _loaded(self):
        model, tokenizer = load_text_generator(self.llm_path, self.device)  # left padding: generation continues every row at its end
        return model.eval(), tokenizer

    @property
    def _tokenizer(self):
        return self._loaded[1]

    @property
    def _model(self):
        return self._loaded[0]

    @functools.cached_property
    def _newline_token_ids(self):
        """Every token whose text holds a line break (a newline, a period and a newline, ...): where a scaffold line ends."""
        tokenizer = self._tokenizer
        return frozenset(i for i in range(len(tokenizer)) if "\n" in tokenizer.decode([i]))

    @torch.no_grad()
    def generate(self, conversations, settings, scaffold=()):
        from transformers import GenerationConfig, LogitsProcessorList

        tokenizer, model = self._tokenizer, self._model
        opening = scaffold[0] if scaffold else ""
        texts = [generation_prompt(tokenizer, messages) + opening for messages in conversations]
        batch = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt").to(self.device)
        processors = LogitsProcessorList()
        if len(scaffold) > 1:
            forced_tokens = sum(len(tokenizer(opener, add_special_tokens=False)["input_ids"]) + 1 for opener in scaffold)
            max_line_tokens = max(1, (settings.max_new_tokens - forced_tokens) // len(scaffold))
            processors.append(
                LineScaffold(tokenizer, scaffold, self._newline_token_ids, batch["input_ids"].shape[1], max_line_tokens)
            )
        sampling = settings.temperature > 0
        generation = GenerationConfig(
            max_new_tokens=settings.max_new_tokens,
            do_sample=sampling,
            temperature=settings.temperature if sampling else None,
            top_p=None,
            top_k=None,
            repetition_penalty=REPETITION_PENALTY,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        # A local RNG stream: sampling is seeded without moving the caller's global RNG.
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(settings.seed)
            output = model.generate(**batch, generation_config=generation, logits_processor=processors)
        new_tokens = output[:, batch["input_ids"].shape[1] :]
        return [opening + text.rstrip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


class EndpointTeacher:
    """An OpenAI-compatible chat endpoint (vLLM ``serve``, SGLang, llama.cpp server, OpenAI, ...).

    ``OPENAI_API_KEY``, when set, is sent as the bearer token. Connection errors, 429 and 5xx
    are retried with exponential backoff; other HTTP errors fail at once with the server's reply.
    """

    def __init__(self, base_url, model, batch_size=8, retries=4, timeout_s=120.0, backoff_s=1.0):
        if not model:
            raise ValueError(
                f"cot_teacher [{base_url}] is an HTTP endpoint: set cot_teacher_model (--teacher-model) "
                "to the model name the server serves."
            )
        base = base_url.rstrip("/")
        self.url = (base[: -len("/v1")] if base.endswith("/v1") else base) + "/v1/chat/completions"
        self.model = model
        self.batch_size = batch_size
        self.retries = retries
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.identity = f"http:{self.url}|model={model}"

    def _post(self, payload):
        headers = {"Content-Type": "application/json"}
        if os.environ.get("OPENAI_API_KEY"):
            headers["Authorization"] = f"Bearer {os.environ['OPENAI_API_KEY']}"
        request = urllib.request.Request(self.url, data=json.dumps(payload).encode("utf-8"), headers=headers, method="POST")
        for attempt in range(self.retries + 1):
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    return json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as error:
                retryable = error.code == 429 or error.code >= 500
                if not retryable or attempt == self.retries:
                    body = error.read().decode("utf-8", errors="replace")[:500]
                    raise RuntimeError(f"Teacher endpoint {self.url} answered HTTP {error.code}: {body}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                if attempt == self.retries:
                    raise ConnectionError(
                        f"Teacher endpoint {self.url} unreachable after {self.retries + 1} tries ({error}); "
                        "check that the server runs and cot_teacher points to it."
                    ) from None
            time.sleep(self.backoff_s * 2**attempt)

    def _reply(self, messages, settings):
        payload = {
            "model": self.model,
            "messages": messages,
            "max_tokens": settings.max_new_tokens,
            "temperature": settings.temperature,
            "seed": settings.seed,
        }
        response = self._post(payload)
        try:
            return (response["choices"][0]["message"]["content"] or "").strip()
        except (KeyError, IndexError, TypeError):
            raise RuntimeError(f"Teacher endpoint {self.url} sent no choices[0].message.content: {str(response)[:500]}") from None

    def generate(self, conversations, settings, scaffold=()):
        # One request per conversation, sent concurrently; the scaffold is not sent (see the module docstring).
        with ThreadPoolExecutor(max_workers=max(1, min(self.batch_size, len(conversations)))) as pool:
            return list(pool.map(lambda messages: self._reply(messages, settings), conversations))


class VLLMTeacher:
    """vLLM offline inference; the engine starts on first use.

    NOTE: vLLM does not run on this project's CPU machines; only the missing-vLLM error is
    tested. The calls follow vLLM's documented ``LLM.chat`` API.
    """

    def __init__(self, model, batch_size=64):
        # Fail before any sample is drawn, not at the first batch.
        require_vllm("cot_teacher 'vllm:<model>'", "give a HF model id / local folder (transformers) or an http(s):// endpoint")
        self.model = model
        self.batch_size = batch_size
        self.identity = f"vllm:{model}|repetition_penalty={REPETITION_PENALTY}"

    @functools.cached_property
    def _engine(self):
        import vllm

        return vllm.LLM(model=self.model)

    def generate(self, conversations, settings, scaffold=()):
        import vllm

        opening = scaffold[0] if scaffold else ""
        sampling = vllm.SamplingParams(
            temperature=settings.temperature,
            max_tokens=settings.max_new_tokens,
            seed=settings.seed,
            repetition_penalty=REPETITION_PENALTY,
        )
        if opening:
            conversations = [messages + [{"role": "assistant", "content": opening}] for messages in conversations]
        outputs = self._engine.chat(
            conversations,
            sampling,
            use_tqdm=False,
            add_generation_prompt=not opening,
            continue_final_message=bool(opening),
        )
        return [opening + output.outputs[0].text.rstrip() for output in outputs]


def make_teacher(spec, device="cpu", batch_size=8, endpoint_model=None):
    """The teacher that ``cot_teacher`` names: ``http(s)://...``, ``vllm:<model>``, or a HF model (id, folder, default)."""
    spec = str(spec or "")
    if spec.startswith(("http://", "https://")):
        return EndpointTeacher(spec, endpoint_model, batch_size=batch_size)
    if spec.startswith("vllm:"):
        if not spec[len("vllm:") :]:
            raise ValueError("cot_teacher 'vllm:' names no model: write vllm:<HF model id or local folder>.")
        return VLLMTeacher(spec[len("vllm:") :], batch_size=batch_size)
    return LocalTeacher(spec or None, device=device, batch_size=batch_size)
