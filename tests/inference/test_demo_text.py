"""The demo's text reaches the page as generated (issue 14, item 3): markup characters, a newline, literal entities
and multi-byte characters whose bytes arrive as separate tokens, with no U+FFFD on the way.

The tiny engine runs a scripted model: the tiny Gemma 3 (so the engine's real prefill, decode, sampling, text
assembly and streaming run), whose logits are overwritten to put all weight on the next token of a fixed script.
The byte-level tokenizer has one token per byte, so "é" (2 bytes), "漢" (3) and "🙂" (4) each take several tokens,
and only the last of them completes the character. Four added tokens ("<b>", "</b>", "&amp;", "&&") arrive whole,
as a real tokenizer's would: a markup token sent unescaped would become an element on the page (single bytes such as
"<" alone are read as text by the browser's parser either way, so they cannot show an escaping fault).
"""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from inference.engine import Engine, GenerationParams

pytestmark = pytest.mark.django_db(transaction=True)

# What the script makes the model say: every character the page could get wrong.
SCRIPT_TEXT = 'if a < b && c > 0:\n    print("é ü 漢 🙂 &amp; <b>x</b>")\nend'
PROMPT = "Write code:"
ADDED_TOKENS = ["<b>", "</b>", "&amp;", "&&"]
N_TOKENS = 55  # the script's tokens, counted in the first test


def test_the_script_spans_multi_byte_characters_across_tokens(scripted_engine):
    tokenizer = scripted_engine.tokenizer
    ids = tokenizer(SCRIPT_TEXT)["input_ids"]
    # By hand: 'if a < b && c > 0:' 18 characters, newline 1, '    print("' 11, 'é ü 漢 🙂 ' 8, '&amp; ' 6,
    # '<b>x</b>' 8, '")' 2, newline 1, 'end' 3: 58 characters; é and ü take 2 bytes (one extra each), 漢 3 (two
    # extra), 🙂 4 (three extra): 58 + 1 + 1 + 2 + 3 = 65 bytes. The added tokens fold "&&" (2 bytes), "&amp;" (5),
    # "<b>" (3) and "</b>" (4) into one token each: 65 - 1 - 4 - 2 - 3 = 55 tokens.
    assert len(SCRIPT_TEXT) == 58 and len(SCRIPT_TEXT.encode()) == 65
    assert len(ids) == 55
    assert [tokenizer.decode([i]) for i in ids].count("<b>") == 1
    assert len(tokenizer("漢")["input_ids"]) == 3 and len(tokenizer("🙂")["input_ids"]) == 4
    text, metrics = scripted_engine.generate_text(_params())
    assert text == SCRIPT_TEXT
    assert metrics.tokens_generated == len(ids)


def test_the_stream_carries_the_generated_text_exactly(client, scripted_engine):
    run = client.post(reverse("inference:generate"), _form())
    url = re.search(r'sse-connect="([^"]+)"', run.content.decode()).group(1).replace("&amp;", "&")
    response = client.get(url)
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    tokens = [_event_data(block) for block in body.split("\n\n") if block.startswith("event: token")]
    assert len(tokens) == 55  # one event per token, empty while a character is incomplete
    shown = "".join(html.unescape(data) for data in tokens)  # what the browser's HTML parser makes of the data
    assert shown == SCRIPT_TEXT
    assert "\ufffd" not in shown
    raw = "".join(tokens)
    assert "<" not in raw and "&lt;b&gt;" in raw and "&amp;amp;" in raw  # escaped once, entities kept literal


@pytest.mark.slow
@pytest.mark.browser
def test_the_page_shows_the_generated_text_exactly(live_asgi_url, scripted_engine):
    from tests.browser import chromium_page

    with chromium_page() as page:
        page.goto(f"{live_asgi_url}/demo/")
        page.fill("textarea[name=prompt]", PROMPT)
        page.fill("input[name=max_new_tokens]", str(N_TOKENS))
        page.fill("input[name=temperature]", "0")
        page.fill("input[name=top_p]", "1")
        page.click("button:has-text('Generate')")
        page.wait_for_selector(".demo-metrics-list", timeout=30_000)
        shown = page.eval_on_selector("#demo-output", "element => element.textContent")
        prompt_shown = page.eval_on_selector(".demo-prompt", "element => element.textContent")
        assert page.locator("#demo-output b").count() == 0  # the <b> in the text stayed text
    assert shown == SCRIPT_TEXT
    assert "\ufffd" not in shown
    assert prompt_shown == PROMPT


def _event_data(block: str) -> str:
    return "\n".join(line.removeprefix("data: ") for line in block.split("\n")[1:])


def _params() -> GenerationParams:
    return GenerationParams(prompt=PROMPT, max_new_tokens=N_TOKENS, temperature=0.0, top_p=1.0)


def _form() -> dict[str, str]:
    return {"prompt": PROMPT, "temperature": "0", "top_p": "1", "max_new_tokens": str(N_TOKENS)}


@pytest.fixture
def scripted_engine() -> Engine:
    import dataclasses

    import torch
    from transformers import Gemma3ForCausalLM

    from inference.conf import load_settings
    from inference.engine import set_engine
    from inference.tiny import make_byte_tokenizer, make_tiny_causal_lm

    tokenizer = make_byte_tokenizer()
    tokenizer.add_tokens(ADDED_TOKENS)
    model = make_tiny_causal_lm(len(tokenizer))
    script = tokenizer(SCRIPT_TEXT)["input_ids"]

    class ScriptedLM(Gemma3ForCausalLM):
        """The tiny model, its logits replaced by the script's next token (a prefill restarts the script)."""

        step = 0

        def forward(self, *args, **kwargs):  # type: ignore[override]
            out = super().forward(*args, **kwargs)
            input_ids = kwargs.get("input_ids", args[0] if args else None)
            self.step = 0 if input_ids.shape[1] > 1 else self.step + 1
            logits = torch.full_like(out.logits, -1e4)
            logits[..., -1, script[min(self.step, len(script) - 1)]] = 1e4
            out.logits = logits
            return out

    scripted = ScriptedLM(model.config)
    scripted.load_state_dict(model.state_dict())
    scripted.generation_config.eos_token_id = None
    settings = dataclasses.replace(load_settings(), max_new_tokens=128, max_prompt_tokens=64)
    engine = Engine.from_loaded(scripted, tokenizer, settings=settings)
    set_engine(engine)
    yield engine
    set_engine(None)
