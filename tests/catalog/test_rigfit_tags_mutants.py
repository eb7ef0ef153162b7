"""The figures the pages print through catalog/templatetags/rigfit.py, each written out by hand (issue 14: mutation
testing of the verdict view code).

Units as the module states them: GB = 10^9 bytes, GiB = 2^30 bytes, MB = 10^6 bytes; Python's format rounds half to
even on the binary value, so every figure below is chosen away from a rounding tie unless the test is about one.
"""

from __future__ import annotations

import pytest
from django.template import Context
from django.test import RequestFactory

from catalog import extensions, fit
from catalog.templatetags import rigfit

GIB = 1024**3


# --- bytes -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "digits", "shown"),
    [
        (None, 2, "–"),
        ("", 2, "–"),
        (1_234_000_000, 2, "1.23 GB"),  # 1.234 GB, two decimals
        (1_234_000_000, 1, "1.2 GB"),  # the digits argument
        ("1234000000", 2, "1.23 GB"),  # a string from a template
        (0, 2, "0.00 GB"),  # zero is no "MB" figure
        (10_000_000, 2, "0.01 GB"),  # exactly 0.01 GB: still GB
        (9_999_999, 2, "10.0 MB"),  # just under 0.01 GB: 9.999999 MB
        (5_000_000, 2, "5.0 MB"),
        (1_050_001, 2, "1.1 MB"),  # 1.050001 MB: a millionth above the rounding step, so 10^6 exactly
        (-5_000_000, 2, "-5.0 MB"),  # a shortfall under 0.01 GB
        (9_990_000_000, 2, "9.99 GB"),
        (10_000_000_000, 2, "10.0 GB"),  # exactly 10 GB: one decimal from here
        (12_340_000_000, 2, "12.3 GB"),
        (-12_340_000_000, 2, "-12.3 GB"),  # the sign does not change the format
        (99_940_000_000, 2, "99.9 GB"),
        (100_000_000_000, 2, "100 GB"),  # exactly 100 GB: no decimals from here
        (141_000_000_000, 2, "141 GB"),
        (-150_000_000_000, 2, "-150 GB"),
        (1_234_400_000_000, 2, "1,234 GB"),  # thousands separated
    ],
)
def test_it_prints_bytes_as_decimal_gigabytes(value, digits, shown):
    assert rigfit.gb(value, digits) == shown


def test_gb_defaults_to_two_decimals():
    assert rigfit.gb(2_345_000_001) == "2.35 GB"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "–"),
        ("", "–"),
        (8 * GIB, "8 GiB"),  # a card sold as 8 GB
        (24 * GIB, "24 GiB"),
        (8.04 * GIB, "8 GiB"),  # within 0.05 GiB of a whole number
        (7.97 * GIB, "8 GiB"),  # within 0.05 below it
        (8.2 * GIB, "8.2 GiB"),
        (7.9 * GIB, "7.9 GiB"),
        (0.05 * GIB, "0.1 GiB"),  # exactly 0.05 GiB from 0: not within (the bound is strict)
        (0.3 * GIB, "0.3 GiB"),
        (-8.2 * GIB, "-8.2 GiB"),
    ],
)
def test_it_prints_device_memory_in_gibibytes(value, shown):
    assert rigfit.gib(value) == shown


# --- parameters, speeds, differences, durations ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "–"),
        (0, "–"),
        (268_098_176, "268M"),  # Gemma 3 270M's config.json count
        (268_500_001, "269M"),  # 268.500001M: just above the rounding step, so 10^6 exactly
        (1_050_000_001, "1.1B"),  # 1.050000001B: just above the step, so 10^9 exactly
        (999_499_999, "999M"),
        (999_500_000, "1.0B"),  # 999.5M reads as 1.0B, as it is marketed
        (8_030_261_248, "8.0B"),  # Llama 3.1 8B
        (70_553_706_496, "70.6B"),  # Llama 3.1 70B
    ],
)
def test_it_prints_parameter_counts(value, shown):
    assert rigfit.params(value) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, "–"), (0.0, "0.0"), (42.26, "42.3"), (99.94, "99.9"), (100.0, "100"), (1234.4, "1,234")],
)
def test_it_prints_tokens_per_second(value, shown):
    assert rigfit.tps(value) == shown


@pytest.mark.parametrize(
    ("value", "digits", "shown"),
    [
        (None, 3, "–"),
        ("", 3, "–"),
        (0.175, 3, "+0.175"),
        (-0.005, 3, "-0.005"),
        (0, 3, "0.000"),  # no sign on zero
        (0.0, 1, "0.0"),
        (1.26, 1, "+1.3"),
        ("-2.5", 2, "-2.50"),  # a string from a template
    ],
)
def test_it_prints_a_difference_with_its_sign(value, digits, shown):
    assert rigfit.signed(value, digits) == shown


def test_signed_defaults_to_three_decimals():
    assert rigfit.signed(0.1234) == "+0.123"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "–"),
        ("", "–"),
        (0.042, "42 ms"),
        (0.9994, "999 ms"),
        (1, "1.00 s"),  # exactly a second: seconds from here
        (1.234, "1.23 s"),
        ("2.5", "2.50 s"),
        (9.994, "9.99 s"),
        (10, "10.0 s"),  # exactly 10 s: one decimal
        (75.4, "75.4 s"),
        (99.94, "99.9 s"),
        (100, "100 s"),  # exactly 100 s: whole seconds
        (1234.4, "1,234 s"),
    ],
)
def test_it_prints_durations(value, shown):
    assert rigfit.seconds(value) == shown


# --- verdicts ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verdict", "label", "css"),
    [
        ("fits-gpu", "Fits in GPU memory", "fits"),
        ("partial", "Partial offload", "partial"),
        ("cpu-only", "CPU only", "cpu"),
        ("no-fit", "Does not fit", "nofit"),
        ("sideways", "sideways", "unknown"),  # an unknown verdict: its own text, the "unknown" style
    ],
)
def test_it_names_every_verdict(verdict, label, css):
    assert rigfit.verdict_label(verdict) == label
    assert rigfit.verdict_class(verdict) == css


def test_it_reads_a_verdict_enum_by_its_value():
    from catalog.fit import Verdict

    assert rigfit.verdict_label(Verdict.PARTIAL_OFFLOAD) == "Partial offload"
    assert rigfit.verdict_class(Verdict.DOES_NOT_FIT) == "nofit"


def _memory(*, host: int = 0, output_copy: int = 0) -> fit.MemoryBreakdown:
    """A breakdown of 5,000,000,000 bytes of weights in a 6,000,000,000-byte total, `host` of them kept in system
    RAM and a tied output copy of `output_copy` bytes on the GPU."""
    return fit.MemoryBreakdown(
        weights_bytes=5 * 10**9,
        kv_cache_bytes=6 * 10**8,
        compute_bytes=3 * 10**8,
        overhead_bytes=10**8,
        vision_bytes=0,
        total_bytes=6 * 10**9,
        host_weights_bytes=host,
        output_copy_bytes=output_copy,
    )


@pytest.mark.parametrize(
    ("memory", "vram"),
    [
        (None, None),
        ("", None),
        # 0.3 GB of input embeddings stay in RAM: 4.7 of 5.0 GB of weights on the GPU, 6.0 - 5.0 + 4.7 = 5.7 GB
        (_memory(host=3 * 10**8), 57 * 10**8),
        # a tied output layer's 0.3 GB copy on the GPU: more on the GPU than the file's weights, 6.0 - 5.0 + 5.3
        (_memory(output_copy=3 * 10**8), 63 * 10**8),
        # both: 5.0 - 0.4 + 0.1 = 4.7 GB of weights on the GPU, 6.0 - 5.0 + 4.7 = 5.7 GB
        (_memory(host=4 * 10**8, output_copy=10**8), 57 * 10**8),
        # every weight on the GPU: the total as it is
        (_memory(), 6 * 10**9),
    ],
)
def test_it_counts_only_the_weights_on_the_gpu_as_vram_needed(memory, vram):
    assert rigfit.vram_bytes(memory) == vram


@pytest.mark.parametrize(
    ("part", "whole", "share"),
    [
        (50, 200, 25.0),
        (3, 4, 75.0),
        (300, 200, 100.0),  # capped at the bar's end
        (-5, 100, 0.0),  # and at its start
        (5, 0, 0.0),  # no whole: an empty bar
        (5, None, 0.0),
        ("1", "8", 12.5),
    ],
)
def test_it_gives_a_bar_share_in_percent(part, whole, share):
    assert rigfit.percent(part, whole) == share


# --- links and lookups -------------------------------------------------------------------------------------------


def _context(url: str) -> Context:
    return Context({"request": RequestFactory().get(url)})


@pytest.mark.parametrize(
    ("url", "changes", "query"),
    [
        ("/models/gemma/?hw=rtx-4090&ctx=4096", {"ctx": 8192}, "?hw=rtx-4090&ctx=8192"),  # replaced in place
        ("/models/gemma/?hw=rtx-4090", {"ctx": 8192}, "?hw=rtx-4090&ctx=8192"),  # added
        ("/models/gemma/?hw=rtx-4090&ctx=4096", {"hw": None}, "?ctx=4096"),  # None removes
        ("/models/gemma/?hw=rtx-4090&ctx=4096", {"hw": ""}, "?ctx=4096"),  # so does ""
        ("/models/gemma/?hw=rtx-4090", {"users": None}, "?hw=rtx-4090"),  # removing what is not there
        ("/models/gemma/?hw=rtx-4090", {"hw": None}, "?"),  # nothing left
        ("/models/gemma/?q=a+b", {"page": 2}, "?q=a+b&page=2"),
        ("/models/gemma/", {"q": "a&b"}, "?q=a%26b"),  # encoded
    ],
)
def test_it_rewrites_the_query_string_of_the_current_page(url, changes, query):
    assert rigfit.query_with(_context(url), **changes) == query


def test_it_keeps_every_value_of_a_repeated_parameter():
    # A filter link on a list page with two values of one parameter keeps both (QueryDict.urlencode writes each).
    context = _context("/models/?family=gemma&family=llama")
    assert rigfit.query_with(context, page=2) == "?family=gemma&family=llama&page=2"


def test_it_builds_a_query_string_without_a_request():
    assert rigfit.query_with(Context({}), ctx=4096, hw=None, q="a b") == "?ctx=4096&q=a+b"
    assert rigfit.query_with(Context({}), hw=None) == "?"


def test_query_with_leaves_the_request_untouched():
    context = _context("/models/?hw=rtx-4090")
    rigfit.query_with(context, hw=None)
    assert context["request"].GET.urlencode() == "hw=rtx-4090"


@pytest.mark.parametrize(
    ("mapping", "key", "value"),
    [({"a": 1}, "a", 1), ({"a": 1}, "b", None), ({}, "a", None), (None, "a", None)],
)
def test_it_looks_up_a_key(mapping, key, value):
    assert rigfit.get_item(mapping, key) == value


# --- a model's sources -------------------------------------------------------------------------------------------


def test_it_labels_a_figure_from_the_list_the_field_or_its_name():
    from catalog.models import Model

    assert rigfit.field_label(Model(), "n_kv_heads") == "KV heads"  # the module's own list
    assert rigfit.field_label(Model(), "publisher") == "publisher"  # the model field's verbose name
    assert rigfit.field_label(Model(), "source_repo") == "source repo"
    assert rigfit.field_label(object(), "rope_theta") == "rope theta"  # no such field: the name, readable


class _Sourced:
    """A stand-in for a catalog model: its sources grouped by origin, in first-seen order."""

    def __init__(self, groups: list[tuple[str, list[str]]]):
        self._groups = groups

    def sources_by_origin(self) -> list[tuple[str, list[str]]]:
        return self._groups


CONFIG = "config.json of google/gemma-3-270m at revision 9b0cfec8, read on 2026-11-30 from the Hugging Face Hub."
assert len(CONFIG) == 102  # long enough (>= 80 characters) to be named instead of repeated


def test_it_lists_each_source_with_the_figures_it_backs_capitalised():
    model = _Sourced([("model card", ["n_params", "license"]), ("paper", ["rope_theta"])])
    assert rigfit.source_rows(model) == [("Parameters, licence", "model card"), ("Rope theta", "paper")]


def test_it_names_a_long_source_quoted_in_another_instead_of_repeating_it():
    quoting = f"The model card repeats it: {CONFIG} Checked by hand."
    model = _Sourced([(CONFIG, ["n_layers", "hidden_size"]), (quoting, ["n_params"]), ("short", ["vocab_size"])])
    assert rigfit.source_rows(model) == [
        ("Layers, hidden size", CONFIG),
        ("Parameters", "The model card repeats it: the source of layers, hidden size above Checked by hand."),
        ("Vocabulary size", "short"),
    ]
    # the quoted source listed after the one quoting it: "below"
    model = _Sourced([(quoting, ["n_params"]), (CONFIG, ["n_layers"])])
    assert rigfit.source_rows(model)[0] == (
        "Parameters",
        "The model card repeats it: the source of layers below Checked by hand.",
    )


def test_a_source_of_exactly_80_characters_is_named_and_one_of_79_repeated():
    eighty = "x" * 80
    seventy_nine = "y" * 79
    model = _Sourced([(eighty, ["n_layers"]), (f"[{eighty}]", ["n_heads"])])
    assert rigfit.source_rows(model)[1] == ("Attention heads", "[the source of layers above]")
    model = _Sourced([(seventy_nine, ["n_layers"]), (f"[{seventy_nine}]", ["n_heads"])])
    assert rigfit.source_rows(model)[1] == ("Attention heads", f"[{seventy_nine}]")


def test_a_source_does_not_name_itself():
    model = _Sourced([(CONFIG, ["n_layers"])])
    assert rigfit.source_rows(model) == [("Layers", CONFIG)]


def test_an_object_without_sources_has_no_rows():
    assert rigfit.source_rows(object()) == []


# --- descriptions ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "first", "rest"),
    [
        ("Small and fast. Runs on a phone! Really?", "Small and fast.", "Runs on a phone! Really?"),
        ("  Padded.   Then more.  ", "Padded.", "Then more."),
        ("One sentence only.", "One sentence only.", ""),
        ("Version 3.1 is out. 128K context.", "Version 3.1 is out.", "128K context."),
        ("", "", ""),
        (None, "", ""),
    ],
)
def test_it_splits_a_description_after_its_first_sentence(text, first, rest):
    assert rigfit.first_sentence(text) == first
    assert rigfit.after_first_sentence(text) == rest


# --- the context control -----------------------------------------------------------------------------------------


def test_it_offers_powers_of_two_up_to_the_model_maximum_and_the_context_in_use():
    # 512 ... 8,192 for an 8K model (K = 1,024 tokens), plus the 3,000 in use, written out.
    assert rigfit.context_options(3000, 8192) == [
        (512, "512"),
        (1024, "1K"),
        (2048, "2K"),
        (3000, "3,000"),
        (4096, "4K"),
        (8192, "8K"),
    ]
    # values from a template are strings
    assert rigfit.context_options("3000", "4096")[-2:] == [(3000, "3,000"), (4096, "4K")]


def test_without_a_context_or_maximum_it_offers_up_to_128k():
    options = rigfit.context_options(None)
    assert options[0] == (512, "512") and options[-1] == (131072, "128K") and len(options) == 9
    assert rigfit.context_options(0, 0) == options


# --- sections other apps add -------------------------------------------------------------------------------------


@pytest.fixture
def two_sections(settings, monkeypatch):
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "OPTIONS": {
                "loaders": [
                    (
                        "django.template.loaders.locmem.Loader",
                        {
                            "first.html": "[{{ shared }}|{{ own }}]",
                            "second.html": "<{{ shared }}|{{ own }}|{% csrf_token %}|&>",
                        },
                    )
                ],
            },
        }
    ]
    monkeypatch.setitem(
        extensions._sections,
        "test-page",
        [
            extensions.Section("first.html", lambda obj: {"own": obj}),
            extensions.Section("second.html", lambda obj: {"own": obj.upper(), "shared": "the section's"}),
        ],
    )


def test_it_renders_every_section_with_the_page_context_and_its_own(two_sections):
    request = RequestFactory().get("/models/gemma/")
    context = Context({"shared": "the page's", "request": request})
    html = rigfit.extension_sections(context, "test-page", "gemma")
    # first: the page's value and its own; second: its own value wins over the page's; with the request, the
    # section gets the CSRF token a form needs (a RequestContext); "&" is the template's own text, not escaped.
    first, second = "[the page&#x27;s|gemma]", "<the section&#x27;s|GEMMA|"
    assert html.startswith(first + second)
    assert 'name="csrfmiddlewaretoken"' in html and html.endswith("|&>")
    assert rigfit.extension_sections(context, "no-such-page", "gemma") == ""
