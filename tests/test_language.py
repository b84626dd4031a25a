"""The customers' own words: phrases, collocations, KWIC, log-odds, quote bank."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats
from stop_words import get_stop_words

from helpers import language

SMALL_STOP = frozenset({"the", "was", "at", "me", "for"})


@pytest.fixture
def excerpts() -> pd.DataFrame:
    rows = [
        ("c1", 1, "interviewer", "Was shipping cost the problem?"),
        (
            "c1",
            2,
            "customer",
            "The shipping cost was too high. Shipping cost at checkout surprised me.",
        ),
        ("c2", 1, "interviewer", "What stopped you?"),
        ("c2", 2, "customer", "Shipping cost again! Too high for me."),
    ]
    frame = pd.DataFrame(
        rows, columns=["conversation_id", "position", "speaker", "text"]
    )
    frame["excerpt_id"] = [
        f"{c}-{p:03d}"
        for c, p in zip(frame["conversation_id"], frame["position"], strict=True)
    ]
    frame["is_customer"] = frame["speaker"] == "customer"
    return frame


def test_tokens_keep_contractions_and_drop_punctuation():
    assert language.tokenise("I didn’t buy it: $40 shipping! I'm 5'5\"") == [
        "i", "didn't", "buy", "it", "40", "shipping", "i'm", "5'5",
    ]  # fmt: skip


def test_links_and_handles_are_dropped_and_phrases_do_not_span_them():
    text = "@AmazonHelp my order https://t.co/Ab1 never came, see www.x.com/a b"
    assert language.tokenise_spans(text) == [
        ["my", "order"], ["never", "came", "see"], ["b"],
    ]  # fmt: skip
    # an e-mail's @ is not a handle (redaction deals with e-mails)
    assert language.tokenise_spans("mail me@x.com") == [["mail", "me", "x", "com"]]
    frame = pd.DataFrame(
        {
            "conversation_id": ["a", "b"],
            "text": [
                "late parcel https://t.co/x1 again",
                "late parcel http://t.co/y2 again",
            ],
            "is_customer": [True, True],
        }
    )
    phrases = language.count_phrases(
        frame, sizes=(2,), min_count=2, stop_words=frozenset()
    )
    # Without the split, "parcel https", "https t", "t co" and "again" pairs
    # would count; only the customer's own "late parcel" is a phrase.
    assert phrases[["phrase", "n_occurrences"]].values.tolist() == [["late parcel", 2]]
    pairs = language.find_collocations(frame, stop_words=frozenset())
    assert pairs["phrase"].tolist() == ["late parcel"]


def customer_turns(texts: dict[str, str]) -> pd.DataFrame:
    """Return one customer turn per conversation id."""
    return pd.DataFrame(
        {
            "conversation_id": list(texts),
            "text": list(texts.values()),
            "is_customer": [True] * len(texts),
        }
    )


TONIGHT_STOP = frozenset({"i", "i'll", "go", "and", "it", "will"})


def test_overlapping_pieces_of_one_utterance_become_one_phrase():
    frame = customer_turns(
        {
            "a": "I'll go back and order it tonight.",
            "b": "OK, I'll go back and order it tonight",
        }
    )
    # By hand, with this stop list, each turn holds two phrases: "back and
    # order" (words 3-5 of the sentence) and "order it tonight" (5-7). They
    # overlap on "order", each said twice, always in the same sentence.
    counted = language.count_phrases(frame, stop_words=TONIGHT_STOP)
    assert counted[["phrase", "n_occurrences"]].values.tolist() == [
        ["back and order", 2],
        ["order it tonight", 2],
    ]
    listed = language.list_repeated_phrases(frame, stop_words=TONIGHT_STOP)
    assert listed.to_dict("records") == [
        {
            "phrase": "back and order it tonight",
            "n_words": 5,
            "n_occurrences": 2,
            "n_conversations": 2,
            "n_ngrams": 2,
        }
    ]


def test_a_piece_also_said_on_its_own_keeps_its_own_row():
    frame = customer_turns(
        {
            "a": "I'll go back and order it tonight.",
            "b": "I'll go back and order it tonight",
            "c": "I will order it tonight",
        }
    )
    # "order it tonight" is said three times, once outside the longer
    # sentence, so it is a thing customers said in its own right.
    listed = language.list_repeated_phrases(frame, stop_words=TONIGHT_STOP)
    assert listed.drop(columns="n_words").values.tolist() == [
        ["order it tonight", 3, 3, 1],
        ["back and order", 2, 2, 1],
    ]


def test_phrases_side_by_side_without_overlap_stay_apart():
    frame = customer_turns(
        {"a": "red boots and fast shipping", "b": "red boots and fast shipping!"}
    )
    # Two-word phrases only: "red boots" and "fast shipping" touch no word of
    # each other, so nothing joins them although they always come together.
    listed = language.list_repeated_phrases(
        frame, sizes=(2,), stop_words=frozenset({"and"})
    )
    assert listed["phrase"].tolist() == ["fast shipping", "red boots"]
    assert listed["n_ngrams"].tolist() == [1, 1]


def test_a_phrase_said_only_inside_a_longer_one_is_joined_to_it():
    frame = customer_turns(
        {
            "a": "saw a friend's photo on instagram",
            "b": "my friend's photo on instagram",
            "c": "a photo on instagram, no friend",
        }
    )
    stop = frozenset({"a", "my", "no"})
    counts = language.count_phrases(frame, stop_words=stop)
    counts = counts.set_index("phrase")["n_occurrences"]
    assert counts["friend's photo on instagram"] == 2
    assert counts["friend's photo"] == 2 and counts["photo on instagram"] == 3
    listed = language.list_repeated_phrases(frame, stop_words=stop)
    # Said 3 times (a, b, c): "photo on", "on instagram", "photo on instagram".
    # Said twice (a, b): "friend's photo", "friend's photo on", "friend's photo
    # on instagram". "photo on instagram" was also said without "friend's",
    # so it keeps its own row.
    assert listed.values.tolist() == [
        ["photo on instagram", 3, 3, 3, 3],
        ["friend's photo on instagram", 4, 2, 2, 3],
    ]


def test_numbers_alone_are_not_phrases():
    frame = pd.DataFrame(
        {
            "conversation_id": ["a", "b"],
            "text": ["size 4 10 in store", "size 4 10 again"],
            "is_customer": [True, True],
        }
    )
    phrases = language.count_phrases(
        frame, sizes=(2,), min_count=2, stop_words=frozenset()
    )
    # "size 4" (twice) has a word; "4 10" (twice) is numbers only.
    assert phrases["phrase"].tolist() == ["size 4"]


def test_stop_words_come_from_the_package_minus_meaningful_words():
    package = set(get_stop_words("en"))
    assert "the" in language.STOP_WORDS
    assert language.STOP_WORDS.issubset(package)
    # Negations and sizes carry customers' meaning ("not worth", "too small").
    assert {"not", "too", "small"} <= package
    assert not {"not", "too", "small"} & language.STOP_WORDS


def test_phrase_counts_by_hand(excerpts):
    phrases = language.count_phrases(
        excerpts, sizes=(2, 3), min_count=2, stop_words=SMALL_STOP
    )
    # Customer turn 1: shipping cost (x2), too high, high shipping, checkout
    # surprised; turn 2: shipping cost, cost again, again too, too high. The
    # interviewer's "shipping cost" must not count. No trigram is said twice.
    assert phrases.to_dict("records") == [
        {
            "phrase": "shipping cost",
            "n_words": 2,
            "n_occurrences": 3,
            "n_conversations": 2,
        },
        {"phrase": "too high", "n_words": 2, "n_occurrences": 2, "n_conversations": 2},
    ]


def test_phrase_counts_keep_single_occurrences_when_asked(excerpts):
    phrases = language.count_phrases(
        excerpts, sizes=(3,), min_count=1, stop_words=SMALL_STOP
    )
    # Trigrams without a stop word at either end: cost was too, too high
    # shipping, high shipping cost, cost at checkout, shipping cost again, cost
    # again too, again too high ("too" is not in this stop list).
    assert sorted(phrases["phrase"]) == sorted(
        [
            "cost was too",
            "too high shipping",
            "high shipping cost",
            "cost at checkout",
            "shipping cost again",
            "cost again too",
            "again too high",
        ]
    )


def test_collocation_likelihood_ratio_matches_scipy_g_test(excerpts):
    collocations = language.find_collocations(
        excerpts, size=2, min_count=2, stop_words=SMALL_STOP
    ).set_index("phrase")
    # Customer tokens: 12 + 7 = 19; "shipping" 3 times, "cost" 3 times, the pair 3.
    table = [[3, 0], [0, 19 - 3]]
    g_squared = stats.chi2_contingency(
        table, correction=False, lambda_="log-likelihood"
    ).statistic
    assert collocations.loc["shipping cost", "score"] == pytest.approx(g_squared)
    assert collocations.loc["shipping cost", "n_occurrences"] == 3
    # "too high": too 2, high 2, pair 2.
    table = [[2, 0], [0, 17]]
    g_squared = stats.chi2_contingency(
        table, correction=False, lambda_="log-likelihood"
    ).statistic
    assert collocations.loc["too high", "score"] == pytest.approx(g_squared)


def test_keyword_in_context_shows_words_around_each_use():
    frame = pd.DataFrame(
        {
            "conversation_id": ["c1"],
            "excerpt_id": ["c1-002"],
            "text": ["It was Too expensive, honestly too expensive for me"],
            "is_customer": [True],
        }
    )
    kwic = language.keyword_in_context(frame, "too expensive", width=2)
    assert kwic[["left", "keyword", "right"]].values.tolist() == [
        ["It was", "Too expensive", "honestly too"],
        ["expensive honestly", "too expensive", "for me"],
    ]


def test_log_odds_with_informative_prior_by_hand():
    excerpts = pd.DataFrame(
        {
            "conversation_id": ["a1", "b1"],
            "excerpt_id": ["a1-001", "b1-001"],
            "text": ["price price price ship", "price ship ship ship"],
            "is_customer": [True, True],
        }
    )
    conversations = pd.DataFrame(
        {"conversation_id": ["a1", "b1"], "segment": ["a", "b"]}
    )
    scores = language.distinguish_phrases(
        excerpts, conversations, sizes=(1,), min_count=1, stop_words=frozenset()
    ).set_index(["segment", "phrase"])
    # Prior = pooled counts: price 4, ship 4 (a_0 = 8); n_a = n_b = 4.
    # delta(price, a vs b) = log(7 / (4 + 8 - 3 - 4)) - log(5 / (4 + 8 - 1 - 4))
    #                      = log(7/5) - log(5/7); var = 1/7 + 1/5.
    delta = math.log(7 / 5) - math.log(5 / 7)
    se = math.sqrt(1 / 7 + 1 / 5)
    row = scores.loc[("a", "price")]
    assert row["log_odds"] == pytest.approx(delta)
    assert row["z"] == pytest.approx(delta / se)
    assert row["n_in_segment"] == 3
    assert scores.loc[("b", "price"), "log_odds"] == pytest.approx(-delta)
    assert scores.loc[("a", "ship"), "z"] == pytest.approx(-delta / se)


def test_quote_bank_ids_redaction_and_consent():
    codebook = pd.DataFrame(
        {
            "code": ["OBJ", "OBJ-PRICE", "STAGE", "STAGE-BUY"],
            "parent": [None, "OBJ", None, "STAGE"],
        }
    )
    excerpts = pd.DataFrame(
        {
            "conversation_id": ["2026-11-07"] * 3 + ["2026-11-08"],
            "excerpt_id": [
                "2026-11-07-001",
                "2026-11-07-002",
                "2026-11-07-003",
                "2026-11-08-002",
            ],
            "position": [1, 2, 3, 2],
            "text": [
                "Alex here, what stopped you?",
                "Alex, it was too pricey; call me on +44 7700 900123 or jo@example.com",
                "Then I bought it anyway.",
                "Price was fine.",
            ],
            "is_customer": [False, True, True, True],
        }
    )
    conversations = pd.DataFrame(
        {
            "conversation_id": ["2026-11-07", "2026-11-08"],
            "customer_key": ["c_1", "c_2"],
            "segment": ["cart_abandoners", "first_time_no_return"],
            "interviewer": ["Alex Smith", "Sam"],
            "consent_to_quote": [True, False],
        }
    )
    coded = pd.DataFrame(
        {
            "excerpt_id": [
                "2026-11-07-001",
                "2026-11-07-002",
                "2026-11-07-003",
                "2026-11-07-003",
                "2026-11-08-002",
            ],
            "code": ["OBJ-PRICE", "OBJ-PRICE", "STAGE-BUY", "OBJ-PRICE", "OBJ-PRICE"],
        }
    )
    bank = language.build_quote_bank(excerpts, conversations, coded, codebook)
    # The interviewer's coded turn is not a customer quote.
    assert bank["quote_id"].tolist() == [
        "q-2026-11-07-002", "q-2026-11-07-003", "q-2026-11-08-002",
    ]  # fmt: skip
    assert (
        bank["text"].iloc[0]
        == "[name], it was too pricey; call me on [phone] or [email]"
    )
    # A theme code comes before a stage code as the quote's main code.
    assert bank["code"].iloc[1] == "OBJ-PRICE"
    assert bank["codes"].iloc[1] == "OBJ-PRICE, STAGE-BUY"
    assert bank["consent_to_quote"].tolist() == [True, True, False]
    # Reports pick consented quotes only; a parent finds its children's quotes.
    chosen = language.select_quote(bank, "OBJ", codebook)
    assert chosen["quote_id"] == "q-2026-11-07-002"
    assert (
        language.select_quote(bank, "OBJ", codebook, segment="first_time_no_return")
        is None
    )


def test_words_are_read_from_redacted_text():
    excerpts = pd.DataFrame(
        {
            "conversation_id": ["c1", "c1"],
            "excerpt_id": ["c1-001", "c1-002"],
            "text": [
                "Ring me on 07700 900123, Jordan, ring me on 07700 900123",
                "Write to jo@example.com",
            ],
            "is_customer": [True, True],
        }
    )
    conversations = pd.DataFrame({"conversation_id": ["c1"], "interviewer": ["Jordan"]})
    redacted = language.redact_excerpts(excerpts, conversations)
    assert redacted["text"].tolist() == [
        "Ring me on [phone], [name], ring me on [phone]",
        "Write to [email]",
    ]
    assert excerpts["text"].iloc[1] == "Write to jo@example.com"  # input untouched
    phrases = language.count_phrases(
        redacted, sizes=(2,), min_count=1, stop_words=frozenset()
    )
    assert not phrases["phrase"].str.contains(r"\d|example|jordan").any()


def test_accented_words_stay_whole():
    # An ASCII-only pattern cut "café" to "caf" and "était" to "tait", in phrase
    # counts and in the keyword-in-context view of the customer's own words.
    assert language.tokenise("Le café était trop cher, naïve me") == [
        "le", "café", "était", "trop", "cher", "naïve", "me",
    ]  # fmt: skip
    excerpts = pd.DataFrame(
        {
            "conversation_id": ["a"],
            "excerpt_id": ["a-001"],
            "is_customer": [True],
            "text": ["Le café était trop cher"],
        }
    )
    view = language.keyword_in_context(excerpts, "cher")
    assert view.loc[0, "left"] == "Le café était trop"


OFFLINE_SCRIPT = """
import socket, sys
import nltk

def refuse(*args, **kwargs):
    raise OSError("network refused by the test")

socket.socket = refuse
socket.create_connection = refuse
nltk.data.path[:] = [sys.argv[1]]  # an empty folder: no downloaded NLTK data

import pandas as pd
from helpers import coding, language

long_turn = " ".join(["The shipping cost was too high at checkout."] * 6)
conversations = pd.DataFrame(
    {"conversation_id": ["c1", "c2"], "segment": ["a", "b"],
     "text": [f"Customer: {long_turn}", "Customer: Shipping cost again, too high."]}
)
excerpts = coding.split_excerpts(conversations, max_words=10)
phrases = language.count_phrases(excerpts).set_index("phrase")["n_occurrences"]
listed = language.list_repeated_phrases(excerpts)
pairs = language.find_collocations(excerpts)
context = language.keyword_in_context(excerpts, "shipping")
language.distinguish_phrases(excerpts, conversations)
print(len(excerpts), phrases["shipping cost"], phrases["too high"], len(pairs),
      len(context))
for row in listed.itertuples(index=False):
    print(f"{row.phrase}|{row.n_occurrences}|{row.n_conversations}")
"""


def test_words_are_counted_offline_without_nltk_downloads(tmp_path):
    import subprocess
    import sys

    empty = tmp_path / "nltk_data"
    empty.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT, str(empty)],
        capture_output=True,
        text=True,
        env={
            "NLTK_DATA": str(empty),
            "HOME": str(tmp_path),
            "PATH": "",
            # The helpers under test, not whichever copy the venv installed.
            "PYTHONPATH": str(Path(language.__file__).parents[1]),
        },
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # Six sentences of the long turn (Punkt without a model) plus one turn;
    # "shipping cost" said 7 times, "too high" 7 times, in 7 excerpts.
    counts, *listed = done.stdout.splitlines()
    n_excerpts, shipping, too_high, n_pairs, n_context = counts.split()
    assert (int(n_excerpts), int(shipping), int(too_high)) == (7, 7, 7)
    assert int(n_pairs) > 0 and int(n_context) == 7
    # The long turn's sentence holds, by hand, "shipping cost" and "too high"
    # (also said in c2) and five more phrases said only there, six times each
    # ("shipping cost was too", "cost was too", "cost was too high", "high at
    # checkout", "too high at checkout"): together one thing said six times.
    # "shipping cost" and "too high" touch no common word, so stay apart.
    assert listed == [
        "shipping cost|7|2",
        "too high|7|2",
        "shipping cost was too high at checkout|6|1",
    ]
