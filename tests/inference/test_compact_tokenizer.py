"""The compact numpy tokenizer must tokenize and decode exactly like the Rust `tokenizers` one it replaces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference import compact_tokenizer
from inference.compact_tokenizer import CACHE_NAME, CompactTokenizer
from inference.engine import _TextAssembler
from inference.tokenizer import FastTokenizer

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
NON_SPECIAL_ADDED = ["[multimodal]", "\n", "\n\n", "\n\n\n", "\t", "<td>"]
CHARS = [*"▁abcdehlorwtx日本", "<", ">"]
MERGES = [
    ("abc", "d"),  # ranked before the merges that make "abc": the heap must still apply it once "abc" exists
    ("a", "b"),
    ("ab", "c"),
    ("h", "e"),
    ("l", "l"),
    ("he", "ll"),
    ("hell", "o"),
    ("▁", "hello"),
    ("a", "a"),
    ("aa", "a"),
    ("▁", "a"),
    ("▁", "▁"),
    ("▁▁", "▁▁"),
    ("w", "o"),
    ("wo", "r"),
    ("wor", "l"),
    ("worl", "d"),
    ("▁", "world"),
    ("日", "本"),
    ("<", "td"),
    ("t", "d"),
]
TINY_STRINGS = [
    "",
    " ",
    "hello world",
    " hello  world ",
    "aaaaaaa",
    "abcd abcabc dcba",
    "<bos>hello<eos>",
    "<start_of_turn>user\nhello<end_of_turn>\n<start_of_turn>model\n",
    "\n\n\n\n\n\t\t",
    "[multimodal][multimodal]<td></td><t",
    "日本日本語 😀 é ü ß",
    "<<bos>>< bos>",
    "\x00\x7f\u200b\ufeff\r\n",
    "    ",
    "éz é!日zz😀z",  # unk pending while byte-fallback tokens come (Rust adds the unk after them)
]


def _make_tokenizer(path: Path, *, all_bytes: bool = True, fuse_unk: bool = True) -> Path:
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab: dict[str, int] = {}
    for token in SPECIALS + NON_SPECIAL_ADDED:
        vocab[token] = len(vocab)
    for b in range(256):
        if all_bytes or b < 0x80:  # without the high bytes, non-ASCII characters outside the vocabulary are unk
            vocab[f"<0x{b:02X}>"] = len(vocab)
    for token in CHARS:
        vocab.setdefault(token, len(vocab))
    for left, right in MERGES:
        vocab.setdefault(left + right, len(vocab))
    model = models.BPE(vocab=vocab, merges=MERGES, unk_token="<unk>", fuse_unk=fuse_unk, byte_fallback=True)
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizers.Replace(" ", "▁")
    tokenizer.pre_tokenizer = pre_tokenizers.Split(" ", "merged_with_previous")
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    tokenizer.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIALS])
    tokenizer.add_tokens([AddedToken(t, normalized=False, special=False) for t in NON_SPECIAL_ADDED])
    path.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<eos>", "bos_token": "<bos>"}))
    return path


@pytest.fixture(scope="module", params=["all-bytes", "some-bytes-unk", "some-bytes-unfused"])
def tiny_pair(request, tmp_path_factory):
    from tokenizers import Tokenizer

    all_bytes = request.param == "all-bytes"
    path = _make_tokenizer(
        tmp_path_factory.mktemp(request.param), all_bytes=all_bytes, fuse_unk=request.param != "some-bytes-unfused"
    )
    return Tokenizer.from_file(str(path / "tokenizer.json")), CompactTokenizer.from_dir(path), path


TEXT = st.lists(
    st.one_of(
        st.text(max_size=12),
        st.text(alphabet="▁abcdehlorwtx日本 <>\n\t", max_size=20),
        st.sampled_from(SPECIALS + NON_SPECIAL_ADDED + ["😀", "é", "  ", "<0x41>"]),
    ),
    max_size=12,
).map("".join)


def test_it_builds_the_tiny_tokenizer_a_supported_config(tiny_pair):
    _, _, path = tiny_pair
    assert CompactTokenizer.supports(json.loads((path / "tokenizer.json").read_text()))


def test_it_encodes_and_decodes_fixed_strings_like_rust(tiny_pair):
    rust, compact, _ = tiny_pair
    for text in TINY_STRINGS:
        ids = rust.encode(text).ids
        assert compact(text)["input_ids"] == ids, text
        for skip in (True, False):
            assert compact.decode(ids, skip_special_tokens=skip) == rust.decode(ids, skip_special_tokens=skip)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXT)
def test_it_encodes_arbitrary_text_like_rust(tiny_pair, text):
    rust, compact, _ = tiny_pair
    ids = rust.encode(text).ids
    assert compact(text)["input_ids"] == ids
    assert compact.decode(ids, skip_special_tokens=False) == rust.decode(ids, skip_special_tokens=False)
    assert compact.decode(ids) == rust.decode(ids)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_it_decodes_arbitrary_ids_like_rust(tiny_pair, data):
    """Runs of byte tokens (valid UTF-8 or not), special tokens, ids past the vocabulary."""
    rust, compact, _ = tiny_pair
    ids = data.draw(st.lists(st.integers(0, len(compact) + 3), max_size=24))
    for skip in (True, False):
        assert compact.decode(ids, skip_special_tokens=skip) == rust.decode(ids, skip_special_tokens=skip)


def test_it_offers_what_the_engine_uses(tiny_pair):
    import torch

    rust, compact, path = tiny_pair
    ids = compact("hello world", return_tensors="pt")["input_ids"]
    assert ids.dtype == torch.long and ids.shape == (1, len(rust.encode("hello world").ids))
    assert len(compact) == rust.get_vocab_size()
    assert compact.eos_token_id == rust.token_to_id("<eos>") == FastTokenizer.from_dir_rust(path).eos_token_id
    for token in ["<eos>", "hello", "▁world", "<0x41>", "日本", "nope", ""]:
        assert compact.token_to_id(token) == rust.token_to_id(token)
    assert compact.decode(ids[0]) == rust.decode(ids[0].tolist())


def test_it_streams_the_same_text_as_rust(tiny_pair):
    rust, compact, path = tiny_pair
    reference = FastTokenizer.from_dir_rust(path)
    ids = rust.encode("<start_of_turn>model\nhello 日本 😀 world é\n\n").ids
    ours, theirs = _TextAssembler(compact), _TextAssembler(reference)
    assert [ours.push(i) for i in ids] == [theirs.push(i) for i in ids]


def test_it_caches_the_arrays_and_loads_them_without_the_json(tmp_path, monkeypatch):
    path = _make_tokenizer(tmp_path / "model")
    first = CompactTokenizer.from_dir(path)
    assert (path / CACHE_NAME).exists() and not list(path.glob(".tmp-*"))
    with (path / CACHE_NAME).open("rb") as handle:
        assert handle.read(2) == b"PK"  # a plain .npz (np.load runs with allow_pickle=False)

    def refuse(*args, **kwargs):
        raise AssertionError("rebuilt from tokenizer.json")

    monkeypatch.setattr(compact_tokenizer, "build_arrays", refuse)
    second = CompactTokenizer.from_dir(path)
    assert second.encode("hello world aaa") == first.encode("hello world aaa")
    assert second.eos_token_id == first.eos_token_id


def test_it_rebuilds_the_cache_when_tokenizer_json_changes(tmp_path):
    path = _make_tokenizer(tmp_path / "model")
    CompactTokenizer.from_dir(path)
    config = json.loads((path / "tokenizer.json").read_text())
    config["post_processor"] = None
    (path / "tokenizer.json").write_text(json.dumps(config))
    ids = CompactTokenizer.from_dir(path).encode("hello")
    assert ids == FastTokenizer.from_dir_rust(path)("hello")["input_ids"]
    assert 2 not in ids  # no <bos> any more


@pytest.mark.parametrize(
    ("change", "rust_loads"),
    [
        (lambda c: c["model"].update(type="WordPiece"), False),
        (lambda c: c["model"].update(dropout=0.1), True),
        (lambda c: c["model"].update(byte_fallback=False), True),
        (lambda c: c["model"].update(continuing_subword_prefix="##"), False),
        (lambda c: c["model"].update(ignore_merges=True), True),
        (lambda c: c.update(normalizer={"type": "NFKC"}), True),
        (lambda c: c.update(normalizer=None), True),
        (
            lambda c: c.update(pre_tokenizer={"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True}),
            True,
        ),
        (lambda c: c.update(decoder={"type": "Fuse"}), True),
        (lambda c: c.update(post_processor={"type": "ByteLevel", "trim_offsets": True}), False),
        (lambda c: c.update(truncation={"max_length": 8}), False),
        (lambda c: c["added_tokens"][0].update(lstrip=True), True),
        (lambda c: c["added_tokens"][-1].update(normalized=True), True),
        (lambda c: c["added_tokens"][-1].update(single_word=True), True),
    ],
)
def test_it_refuses_what_it_does_not_replicate(tmp_path, change, rust_loads, monkeypatch):
    path = _make_tokenizer(tmp_path / "model")
    config = json.loads((path / "tokenizer.json").read_text())
    assert CompactTokenizer.supports(config)
    change(config)
    assert not CompactTokenizer.supports(config)
    (path / "tokenizer.json").write_text(json.dumps(config))
    with pytest.raises(ValueError):
        CompactTokenizer.from_dir(path)
    monkeypatch.delenv("RIGFIT_DEMO_COMPACT_TOKENIZER", raising=False)
    if rust_loads:  # the factory falls back to the Rust tokenizer
        assert isinstance(FastTokenizer.from_dir(path), FastTokenizer)


@pytest.mark.parametrize(("value", "compact"), [(None, True), ("1", True), ("0", False), ("off", False), ("NO", False)])
def test_it_follows_the_environment_switch(tmp_path, monkeypatch, value, compact):
    path = _make_tokenizer(tmp_path / "model")
    if value is None:
        monkeypatch.delenv("RIGFIT_DEMO_COMPACT_TOKENIZER", raising=False)
    else:
        monkeypatch.setenv("RIGFIT_DEMO_COMPACT_TOKENIZER", value)
    tokenizer = FastTokenizer.from_dir(path)
    assert isinstance(tokenizer, CompactTokenizer if compact else FastTokenizer)
    assert tokenizer("hello world")["input_ids"] == FastTokenizer.from_dir_rust(path)("hello world")["input_ids"]


# -- the real Gemma 3 tokenizer (slow: the converted model directory) -------------------------------------------------

REAL_CORPUS = [
    "",
    "The capital of France is",
    "The water cycle describes how water moves between the oceans, the air and the land.",
    "def fib(n: int) -> int:\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    'for (int i = 0; i < 10; ++i) { printf("%d\\n", i); }',
    "日本語のテキストです。東京は日本の首都です。中文测试：你好，世界！한국어 문장입니다.",
    "مرحبا بالعالم. هذه جملة باللغة العربية.",
    "Здравствуй, мир! Ελληνικά. हिन्दी में वाक्य। ภาษาไทย",
    "emoji 😀👍🏽 👨‍👩‍👧‍👦 🇫🇷🇯🇵 ❤️ 🫠",
    "1234567890 3.14159 -42 1e-9 0x1F 1,000,000.00 ½ ² ∑∫√",
    "a  b   c    d     e" + " " * 40 + "end",
    "\n\n\n\nparagraph\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\nx\t\t\ty\r\n",
    "<start_of_turn>user\nWhat is the boiling point of water?<end_of_turn>\n<start_of_turn>model\n",
    "<bos><start_of_turn>user\nhi<end_of_turn>\n<eos><pad><unk><mask>[multimodal]<unused0><unused99>",
    "<table><tr><td>1</td><td>2</td></tr></table><h1>Title</h1>",
    "<start_of_turn <end_of_turn> <<bos>> <0x41> ▁▁ \u2581x",
    "\x00\x01\x07\x1b[31mred\x1b[0m \u200b\u200d\ufeff\U0010ffff\U0001d11e",
    "x" * 600,
    "supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopic",
]


@pytest.fixture(scope="module")
def gemma_pair(real_engine):
    from tokenizers import Tokenizer

    model_dir = real_engine.model_dir
    return Tokenizer.from_file(str(model_dir / "tokenizer.json")), CompactTokenizer.from_dir(model_dir), model_dir


@pytest.mark.slow
@pytest.mark.xdist_group("inference-real-model")
def test_it_is_what_the_real_engine_loads(real_engine, monkeypatch):
    monkeypatch.delenv("RIGFIT_DEMO_COMPACT_TOKENIZER", raising=False)
    assert isinstance(FastTokenizer.from_dir(real_engine.model_dir), CompactTokenizer)
    assert (real_engine.model_dir / CACHE_NAME).exists()


@pytest.mark.slow
@pytest.mark.xdist_group("inference-real-model")
def test_it_matches_the_real_gemma_tokenizer_on_a_fixed_corpus(gemma_pair):
    rust, compact, model_dir = gemma_pair
    assert len(compact) == rust.get_vocab_size() == 262144
    assert compact.eos_token_id == FastTokenizer.from_dir_rust(model_dir).eos_token_id == 1
    for text in [*REAL_CORPUS, "\n".join(REAL_CORPUS), " ".join(REAL_CORPUS) * 3]:
        ids = rust.encode(text).ids
        assert compact(text)["input_ids"] == ids, text[:80]
        for skip in (True, False):
            assert compact.decode(ids, skip_special_tokens=skip) == rust.decode(ids, skip_special_tokens=skip)


@pytest.mark.slow
@pytest.mark.xdist_group("inference-real-model")
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.lists(
        st.one_of(
            st.text(max_size=40),
            st.sampled_from([*REAL_CORPUS[1:], "<start_of_turn>", "<end_of_turn>", "\n", "  ", "<eos>", "<td>"]),
        ),
        max_size=8,
    ).map("".join),
    ids=st.lists(st.integers(0, 262143), max_size=16),
)
def test_it_matches_the_real_gemma_tokenizer_on_arbitrary_text(gemma_pair, text, ids):
    rust, compact, _ = gemma_pair
    encoded = rust.encode(text).ids
    assert compact(text)["input_ids"] == encoded
    byte_tokens = [238 + b for b in bytes([0xC3, 0xA9, 0xF0, 0x9F, 0x98, 0x80, 0xFF, 0x41])]  # <0x00> is id 238
    for sequence in (encoded, ids, ids + byte_tokens, byte_tokens[:3] + ids):
        for skip in (True, False):
            assert compact.decode(sequence, skip_special_tokens=skip) == rust.decode(sequence, skip_special_tokens=skip)


@pytest.mark.slow
@pytest.mark.xdist_group("inference-real-model")
def test_it_streams_the_same_text_as_the_real_rust_tokenizer(gemma_pair):
    rust, compact, model_dir = gemma_pair
    reference = FastTokenizer.from_dir_rust(model_dir)
    for text in REAL_CORPUS:
        ids = rust.encode(text).ids[1:]
        ids += [rust.token_to_id(f"<0x{b:02X}>") for b in "é😀".encode()]  # a character split into byte tokens
        ours, theirs = _TextAssembler(compact), _TextAssembler(reference)
        assert [ours.push(i) for i in ids] == [theirs.push(i) for i in ids], text[:80]
