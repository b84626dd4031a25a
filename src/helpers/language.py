"""The customers' own words: repeated phrases, collocations, keyword in context,
phrases that set one segment apart, and a quote bank with stable ids.

Only customer turns count (``is_customer``): the interviewer's questions would
otherwise top every list. Tokens come from NLTK's ``RegexpTokenizer`` and stop
words from the ``stop-words`` package, so nothing is downloaded at run time.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter

import pandas as pd
from nltk.collocations import BigramCollocationFinder, TrigramCollocationFinder
from nltk.metrics import BigramAssocMeasures, TrigramAssocMeasures
from nltk.tokenize import RegexpTokenizer
from nltk.util import ngrams
from stop_words import get_stop_words

from helpers.privacy import redact
from helpers.themes import ALL_SEGMENTS, STAGE_BRANCH, branch_codes, map_ancestors

log = logging.getLogger(__name__)

# Words are runs of letters or digits in any script ("café", not "caf"); inner
# apostrophes stay inside a word: "didn't", and heights such as 5'5.
TOKENIZER = RegexpTokenizer(r"[^\W_]+(?:'[^\W_]+)*")
# The package's English list (1,333 words in the 2025 release) holds words that
# carry the meaning of customer feedback; they are kept as content words.
# fmt: off
KEPT_WORDS = frozenset({
    "not", "no", "never", "nothing", "too", "very", "small", "smaller", "smallest",
    "large", "big", "little", "long", "longer", "short", "thin", "thick", "high",
    "higher", "low", "lower", "free", "buy", "order", "ordered", "orders", "value",
    "problem", "problems", "good", "great", "better", "best", "site", "website",
    "web", "home", "length", "wide", "back", "wanted", "want", "sure", "sorry",
    "worth",
})
# fmt: on
STOP_WORDS = frozenset(get_stop_words("en")) - KEPT_WORDS
# Web links and social handles (@AmazonHelp) are not the customer's words: left as
# words they make phrases such as "food https" and "t co" in pasted chats.
LINK_PATTERN = re.compile(r"(?:https?://|www\.)\S+|(?<![\w.])@\w+")


def tokenise(text: str) -> list[str]:
    """Return the lower-cased word tokens of `text`.

    Words keep inner apostrophes (``didn't``, ``5'5``); curly apostrophes count
    as straight ones; punctuation and symbols are dropped.
    """
    if not isinstance(text, str):
        return []
    return TOKENIZER.tokenize(text.replace("\u2019", "'").lower())


def tokenise_spans(text: str) -> list[list[str]]:
    """Return the tokens (:func:`tokenise`) of each stretch of `text` between web
    links and @handles, which are dropped; a phrase never spans one."""
    if not isinstance(text, str):
        return []
    spans = (tokenise(span) for span in LINK_PATTERN.split(text))
    return [tokens for tokens in spans if tokens]


def select_customer_turns(excerpts: pd.DataFrame) -> pd.DataFrame:
    """Return the excerpts spoken by the customer (``is_customer`` True)."""
    return excerpts[excerpts["is_customer"].fillna(False).astype(bool)]


def is_phrase(gram: tuple, stop_words: frozenset = STOP_WORDS) -> bool:
    """Return True when `gram` neither starts nor ends with a stop word and holds
    at least one word with letters (numbers alone are not a phrase)."""
    has_word = any(any(ch.isalpha() for ch in token) for token in gram)
    return has_word and gram[0] not in stop_words and gram[-1] not in stop_words


def locate_phrases(
    excerpts: pd.DataFrame,
    *,
    sizes: tuple[int, ...] = (2, 3, 4),
    stop_words: frozenset = STOP_WORDS,
) -> tuple[dict, list[list[str]], list]:
    """Return where customers said each phrase (n-gram), for counting and merging.

    Parameters
    ----------
    excerpts : DataFrame
        ``conversation_id``, ``text``, ``is_customer``; only customer turns count.
    sizes : tuple of int
        The phrase lengths in words.
    stop_words : frozenset
        Phrases starting or ending with one of these are left out (:func:`is_phrase`).

    Returns
    -------
    tuple
        ``places``: phrase (a tuple of words) -> list of ``(stretch, start)``, in
        text order; ``stretches``: the word lists a phrase lives in (one per
        stretch of a customer turn between links, :func:`tokenise_spans`);
        ``owners``: the conversation of each stretch.
    """
    places, stretches, owners = {}, [], []
    turns = select_customer_turns(excerpts)
    for conversation, text in zip(
        turns["conversation_id"], turns["text"], strict=False
    ):
        for tokens in tokenise_spans(text):
            stretch = len(stretches)
            stretches.append(tokens)
            owners.append(conversation)
            for size in sizes:
                for start, gram in enumerate(ngrams(tokens, size)):
                    if is_phrase(gram, stop_words):
                        places.setdefault(gram, []).append((stretch, start))
    return places, stretches, owners


PHRASE_COLUMNS = ["phrase", "n_words", "n_occurrences", "n_conversations"]


def sort_phrases(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    """Return phrase rows as a frame, most said first, then longer, then A-Z."""
    phrases = pd.DataFrame(rows, columns=columns)
    return phrases.sort_values(
        ["n_occurrences", "n_words", "phrase"], ascending=[False, False, True]
    ).reset_index(drop=True)


def count_phrases(
    excerpts: pd.DataFrame,
    *,
    sizes: tuple[int, ...] = (2, 3, 4),
    min_count: int = 2,
    stop_words: frozenset = STOP_WORDS,
) -> pd.DataFrame:
    """Return the phrases (n-grams) customers repeated, most frequent first.

    Parameters
    ----------
    excerpts : DataFrame
        ``conversation_id``, ``text``, ``is_customer``; only customer turns count.
    sizes : tuple of int
        The phrase lengths in words.
    min_count : int
        Keep phrases said at least this many times.
    stop_words : frozenset
        Phrases starting or ending with one of these are dropped ("the price"
        counts as "price"); stop words inside a phrase stay ("cost at checkout").

    Returns
    -------
    DataFrame
        ``phrase``, ``n_words``, ``n_occurrences``, ``n_conversations``
        (conversations where it was said), sorted by ``n_occurrences``, then
        longer phrases first.

    Notes
    -----
    Phrases never cross excerpt boundaries, web links or @handles
    (:func:`tokenise_spans`). Every n-gram is counted, so pieces of one longer
    utterance each get a row; :func:`list_repeated_phrases` joins them for readers.
    """
    places, _, owners = locate_phrases(excerpts, sizes=sizes, stop_words=stop_words)
    rows = [
        {
            "phrase": " ".join(gram),
            "n_words": len(gram),
            "n_occurrences": len(spots),
            "n_conversations": len({owners[stretch] for stretch, _ in spots}),
        }
        for gram, spots in places.items()
        if len(spots) >= min_count
    ]
    return sort_phrases(rows, PHRASE_COLUMNS)


def list_repeated_phrases(
    excerpts: pd.DataFrame,
    *,
    sizes: tuple[int, ...] = (2, 3, 4),
    min_count: int = 2,
    stop_words: frozenset = STOP_WORDS,
) -> pd.DataFrame:
    """Return the phrases customers repeated, one row per thing they said.

    Overlapping n-grams that were said in exactly the same places are pieces of
    one longer utterance: "back and order" and "order it tonight", each said 7
    times and only in "I'll go back and order it tonight", become one row
    "back and order it tonight". So the top rows are different things said.

    Parameters
    ----------
    excerpts : DataFrame
        ``conversation_id``, ``text``, ``is_customer``; only customer turns count.
    sizes, min_count, stop_words
        As for :func:`count_phrases`, which counts the same n-grams.

    Returns
    -------
    DataFrame
        ``phrase`` (the span the joined n-grams cover; it may be longer than
        the largest size), ``n_words``, ``n_occurrences``, ``n_conversations``
        and ``n_ngrams`` (how many n-grams were joined, 1 when none), sorted as
        :func:`count_phrases`.

    Notes
    -----
    Two n-grams join when every occurrence of one overlaps (or contains) an
    occurrence of the other at the same offset, and the number of occurrences
    is the same; joining is transitive. An n-gram also said elsewhere keeps its
    own row: "photo on instagram" said 3 times stays beside "friend's photo on
    instagram" said twice.
    """
    places, stretches, owners = locate_phrases(
        excerpts, sizes=sizes, stop_words=stop_words
    )
    repeated = {
        gram: spots for gram, spots in places.items() if len(spots) >= min_count
    }
    clusters = group_overlapping_phrases(repeated)

    # One row per cluster: the words its n-grams cover together.
    rows = []
    for members in clusters:
        first = [repeated[gram][0] for gram in members]
        stretch = first[0][0]
        begin = min(start for _, start in first)
        end = max(
            start + len(gram) for gram, (_, start) in zip(members, first, strict=True)
        )
        words = stretches[stretch][begin:end]
        spots = repeated[members[0]]
        rows.append(
            {
                "phrase": " ".join(words),
                "n_words": len(words),
                "n_occurrences": len(spots),
                "n_conversations": len({owners[s] for s, _ in spots}),
                "n_ngrams": len(members),
            }
        )
    return sort_phrases(rows, [*PHRASE_COLUMNS, "n_ngrams"])


def group_overlapping_phrases(places: dict) -> list[list[tuple]]:
    """Return the phrases of `places` in clusters said in the same places.

    Parameters
    ----------
    places : dict
        Phrase (tuple of words) -> list of ``(stretch, start)`` in text order,
        from :func:`locate_phrases`.

    Returns
    -------
    list of list of tuple
        Clusters of phrases, each a list; two phrases share a cluster when
        their occurrences pair up one to one, each pair overlapping by at least
        one word at the same offset (see :func:`list_repeated_phrases`).
    """
    # Only phrases said in the same stretches, as often, can pair up.
    by_stretches = {}
    for gram, spots in places.items():
        key = tuple(stretch for stretch, _ in spots)
        by_stretches.setdefault(key, []).append(gram)

    # Join each pair whose starts differ by one offset that makes them overlap.
    parent = {gram: gram for gram in places}

    def find(gram):
        while parent[gram] != gram:
            parent[gram] = parent[parent[gram]]
            gram = parent[gram]
        return gram

    for grams in by_stretches.values():
        for i, one in enumerate(grams):
            for other in grams[i + 1 :]:
                pairs = zip(places[one], places[other], strict=True)
                shifts = {b - a for (_, a), (_, b) in pairs}
                if len(shifts) == 1 and -len(other) < shifts.pop() < len(one):
                    parent[find(other)] = find(one)
    clusters = {}
    for gram in places:
        clusters.setdefault(find(gram), []).append(gram)
    return list(clusters.values())


def find_collocations(
    excerpts: pd.DataFrame,
    *,
    size: int = 2,
    measure: str = "likelihood_ratio",
    min_count: int = 2,
    stop_words: frozenset = STOP_WORDS,
) -> pd.DataFrame:
    """Return word pairs (or triples) that occur together more than chance says.

    Parameters
    ----------
    excerpts : DataFrame
        ``text``, ``is_customer``; only customer turns count, each a document.
    size : {2, 3}
        Bigrams or trigrams.
    measure : str
        An NLTK association measure: ``likelihood_ratio`` (Dunning's G², robust
        at small counts), ``pmi``, ``chi_sq``, ``student_t``, …
    min_count : int
        Frequency filter applied before scoring (PMI overrates rare pairs).
    stop_words : frozenset
        Collocations containing a stop word are dropped.

    Returns
    -------
    DataFrame
        ``phrase``, ``n_occurrences``, ``score``, ``measure``, best first.
    """
    finders = {
        2: (BigramCollocationFinder, BigramAssocMeasures()),
        3: (TrigramCollocationFinder, TrigramAssocMeasures()),
    }
    if size not in finders:
        raise ValueError(f"size must be 2 or 3, got {size!r}")
    finder_class, measures = finders[size]
    if not hasattr(measures, measure):
        raise ValueError(f"unknown association measure {measure!r}")

    # Score within customer turns only; documents are never joined.
    documents = [
        tokens
        for text in select_customer_turns(excerpts)["text"]
        for tokens in tokenise_spans(text)
    ]
    finder = finder_class.from_documents(documents)
    finder.apply_freq_filter(min_count)
    finder.apply_word_filter(lambda word: word is None or word in stop_words)
    scored = finder.score_ngrams(getattr(measures, measure))
    rows = [
        {
            "phrase": " ".join(gram),
            "n_occurrences": finder.ngram_fd[gram],
            "score": score,
            "measure": measure,
        }
        for gram, score in scored
    ]
    return pd.DataFrame(rows, columns=["phrase", "n_occurrences", "score", "measure"])


def keyword_in_context(
    excerpts: pd.DataFrame,
    keyword: str,
    *,
    width: int = 6,
    customer_only: bool = True,
) -> pd.DataFrame:
    """Return every use of `keyword` with the words around it.

    Parameters
    ----------
    excerpts : DataFrame
        ``conversation_id``, ``excerpt_id``, ``text``, ``is_customer``.
    keyword : str
        A word or phrase, matched on whole words, any case.
    width : int
        Words shown on each side.
    customer_only : bool
        Search customer turns only.

    Returns
    -------
    DataFrame
        ``conversation_id``, ``excerpt_id``, ``left``, ``keyword`` (as written),
        ``right``; one row per occurrence.
    """
    target = tokenise(keyword)
    if not target:
        raise ValueError(f"keyword must contain a word, got {keyword!r}")
    rows, size = [], len(target)
    source = select_customer_turns(excerpts) if customer_only else excerpts
    for row in source.itertuples(index=False):
        words = TOKENIZER.tokenize(str(row.text).replace("\u2019", "'"))
        lowered = [word.lower() for word in words]
        for start in range(len(words) - size + 1):
            if lowered[start : start + size] == target:
                rows.append(
                    {
                        "conversation_id": row.conversation_id,
                        "excerpt_id": row.excerpt_id,
                        "left": " ".join(words[max(0, start - width) : start]),
                        "keyword": " ".join(words[start : start + size]),
                        "right": " ".join(words[start + size : start + size + width]),
                    }
                )
    columns = ["conversation_id", "excerpt_id", "left", "keyword", "right"]
    return pd.DataFrame(rows, columns=columns)


def count_terms(
    texts: list[str], *, sizes: tuple[int, ...], stop_words: frozenset
) -> Counter:
    """Return counts of words and phrases (no stop word at either end) in `texts`."""
    counts = Counter()
    for tokens in (span for text in texts for span in tokenise_spans(text)):
        for size in sizes:
            counts.update(
                " ".join(gram)
                for gram in ngrams(tokens, size)
                if is_phrase(gram, stop_words)
            )
    return counts


def compute_log_odds(counts: Counter, other: Counter, prior: Counter) -> pd.DataFrame:
    """Return the log-odds ratio with informative Dirichlet prior, term by term.

    Parameters
    ----------
    counts, other : Counter
        Term counts in the group and in the comparison group.
    prior : Counter
        Prior pseudo-counts alpha_w (usually the counts of both groups together).

    Returns
    -------
    DataFrame
        ``phrase``, ``n_in_segment``, ``n_elsewhere``, ``log_odds`` (delta),
        ``se`` and ``z`` (delta divided by its standard error).

    Notes
    -----
    Monroe, Colaresi and Quinn (2008), "Fightin' words", eqs. 16, 19 and 20:
    delta_w = log((y_i + a_w) / (n_i + a_0 - y_i - a_w))
    - log((y_j + a_w) / (n_j + a_0 - y_j - a_w)) and var(delta_w) ~
    1 / (y_i + a_w) + 1 / (y_j + a_w), where a_0 is the sum of the prior.
    """
    n_i, n_j, a_0 = sum(counts.values()), sum(other.values()), sum(prior.values())
    rows = []
    for term, a_w in prior.items():
        y_i, y_j = counts.get(term, 0), other.get(term, 0)
        delta = math.log((y_i + a_w) / (n_i + a_0 - y_i - a_w)) - math.log(
            (y_j + a_w) / (n_j + a_0 - y_j - a_w)
        )
        se = math.sqrt(1 / (y_i + a_w) + 1 / (y_j + a_w))
        rows.append(
            {
                "phrase": term,
                "n_in_segment": y_i,
                "n_elsewhere": y_j,
                "log_odds": delta,
                "se": se,
                "z": delta / se,
            }
        )
    return pd.DataFrame(
        rows, columns=["phrase", "n_in_segment", "n_elsewhere", "log_odds", "se", "z"]
    )


def distinguish_phrases(
    excerpts: pd.DataFrame,
    conversations: pd.DataFrame,
    *,
    sizes: tuple[int, ...] = (1, 2),
    min_count: int = 2,
    prior_scale: float = 1.0,
    stop_words: frozenset = STOP_WORDS,
) -> pd.DataFrame:
    """Return the words and phrases that set each segment apart from the others.

    Parameters
    ----------
    excerpts : DataFrame
        ``conversation_id``, ``text``, ``is_customer``.
    conversations : DataFrame
        ``conversation_id``, ``segment``.
    sizes : tuple of int
        Term lengths in words (words and two-word phrases by default).
    min_count : int
        Terms said fewer times in all segments together are left out.
    prior_scale : float
        The prior is ``prior_scale`` times each term's count over all segments.

    Returns
    -------
    DataFrame
        ``segment``, ``phrase``, ``n_in_segment``, ``n_elsewhere``, ``log_odds``,
        ``se``, ``z``, one block per segment (that segment against all the
        others), highest ``z`` first. Empty with fewer than two segments.

    Notes
    -----
    The statistic is the log-odds ratio with an informative Dirichlet prior
    (Monroe et al. 2008), see :func:`compute_log_odds`; |z| > 1.96 is the usual
    reading of "distinctive". With 20-30 conversations one talkative customer
    can drive a term, so read ``n_in_segment`` beside ``z``.
    """
    turns = select_customer_turns(excerpts).merge(
        conversations[["conversation_id", "segment"]], on="conversation_id"
    )
    segments = sorted(turns["segment"].dropna().unique())
    if len(segments) < 2:
        log.warning("fewer than two segments: no distinguishing phrases")
    by_segment = {
        s: count_terms(
            turns.loc[turns["segment"] == s, "text"], sizes=sizes, stop_words=stop_words
        )
        for s in segments
    }
    total = sum(by_segment.values(), Counter())
    prior = Counter(
        {term: prior_scale * n for term, n in total.items() if n >= min_count}
    )
    frames = []
    for segment in segments if len(segments) > 1 else []:
        other = sum((c for s, c in by_segment.items() if s != segment), Counter())
        scores = compute_log_odds(by_segment[segment], other, prior)
        frames.append(scores.assign(segment=segment).sort_values("z", ascending=False))
    columns = [
        "segment",
        "phrase",
        "n_in_segment",
        "n_elsewhere",
        "log_odds",
        "se",
        "z",
    ]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def build_quote_bank(
    excerpts: pd.DataFrame,
    conversations: pd.DataFrame,
    coded: pd.DataFrame,
    codebook: pd.DataFrame,
    *,
    names: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Return every coded customer turn as a citable, redacted quote.

    Parameters
    ----------
    excerpts : DataFrame
        ``conversation_id``, ``excerpt_id``, ``position``, ``text``,
        ``is_customer``.
    conversations : DataFrame
        ``conversation_id``, ``customer_key``, ``segment``, ``consent_to_quote``,
        ``interviewer`` (and ``customer_name`` when present): names are redacted.
    coded : DataFrame
        The consensus coding: ``excerpt_id``, ``code``.
    codebook : DataFrame
        The codebook's flat table, for code order.
    names : tuple of str
        More names to redact wherever they appear.

    Returns
    -------
    DataFrame
        ``quote_id`` (``q-<conversation_id>-<position:03d>``), ``conversation_id``,
        ``excerpt_id``, ``position``, ``customer_key``, ``segment``, ``code`` (the
        first theme code in codebook order), ``codes`` (all, comma-separated),
        ``text`` (e-mails, phones and names redacted), ``consent_to_quote``,
        ``n_words``. Every quote is kept; only rows with ``consent_to_quote``
        True may appear in reports.
    """
    stages = set(branch_codes(codebook, STAGE_BRANCH))
    order = {code: index for index, code in enumerate(codebook["code"])}
    ranked = coded.assign(
        rank=coded["code"].map(lambda c: (c in stages, order.get(c, len(order))))
    ).sort_values(["excerpt_id", "rank"])
    codes = ranked.groupby("excerpt_id")["code"].agg(list)

    # Coded customer turns, redacted, with who said them.
    turns = select_customer_turns(excerpts)
    turns = turns[turns["excerpt_id"].isin(codes.index)]
    details = [
        c
        for c in ["customer_key", "segment", "consent_to_quote"]
        if c in conversations.columns
    ]
    quotes = redact_excerpts(turns, conversations, names=names).merge(
        conversations[["conversation_id", *details]], on="conversation_id", how="left"
    )
    quotes["quote_id"] = [
        f"q-{c}-{int(p):03d}"
        for c, p in zip(quotes["conversation_id"], quotes["position"], strict=False)
    ]
    quotes["code"] = quotes["excerpt_id"].map(lambda e: codes[e][0])
    quotes["codes"] = quotes["excerpt_id"].map(lambda e: ", ".join(codes[e]))
    quotes["consent_to_quote"] = quotes["consent_to_quote"].fillna(False).astype(bool)
    quotes["n_words"] = quotes["text"].map(lambda t: len(tokenise(t)))
    columns = ["quote_id", "conversation_id", "excerpt_id", "position", "customer_key"]
    columns += ["segment", "code", "codes", "text", "consent_to_quote", "n_words"]
    return quotes[columns].sort_values("quote_id").reset_index(drop=True)


def redact_excerpts(
    excerpts: pd.DataFrame,
    conversations: pd.DataFrame,
    *,
    names: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Return a copy of `excerpts` with contact details and known names redacted.

    Parameters
    ----------
    excerpts : DataFrame
        ``conversation_id``, ``text`` and any other columns (kept).
    conversations : DataFrame
        ``conversation_id``, ``interviewer`` (and ``customer_name`` when present).
    names : tuple of str
        More names to redact wherever they appear.

    Returns
    -------
    DataFrame
        `excerpts` with ``text`` passed through ``helpers.privacy.redact``: what
        phrase counts, collocations and keyword-in-context views should read, so
        no phone number or e-mail reaches a processed file or a report.
    """
    details = [c for c in ("interviewer", "customer_name") if c in conversations]
    joined = excerpts.merge(
        conversations[["conversation_id", *details]], on="conversation_id", how="left"
    )
    redacted = excerpts.copy()
    redacted["text"] = [
        redact_quote(row, names) for row in joined.itertuples(index=False)
    ]
    return redacted


def redact_quote(row, names: tuple[str, ...]) -> str:
    """Return one quote's text with contact details and known names redacted."""
    known = [getattr(row, "interviewer", None), getattr(row, "customer_name", None)]
    pieces = [n for n in (*known, *names) if isinstance(n, str) and n.strip()]
    # Full names are redacted whole and also word by word ("Alex Smith", "Alex").
    words = [part for n in pieces for part in n.split() if len(part) > 1]
    return redact(str(row.text), names=[*pieces, *words])


def select_quote(
    quotes: pd.DataFrame,
    code: str,
    codebook: pd.DataFrame,
    *,
    consented_only: bool = True,
    segment: str = ALL_SEGMENTS,
) -> dict | None:
    """Return the first quote (by ``quote_id``) that carries `code` or a child.

    Parameters
    ----------
    quotes : DataFrame
        The output of :func:`build_quote_bank`.
    code : str
        The theme.
    codebook : DataFrame
        The codebook's flat table, for descendants.
    consented_only : bool
        Consider only quotes with ``consent_to_quote`` True (for reports).
    segment : str
        Restrict to a segment; ``"all"`` for any.

    Returns
    -------
    dict or None
        The quote's row as a dict, or None when there is no eligible quote.
    """
    lineage = map_ancestors(codebook)
    matches = quotes["codes"].map(
        lambda joined: any(code in lineage.get(c, [c]) for c in joined.split(", "))
    )
    eligible = quotes[matches]
    if consented_only:
        eligible = eligible[eligible["consent_to_quote"]]
    if segment != ALL_SEGMENTS:
        eligible = eligible[eligible["segment"] == segment]
    if eligible.empty:
        return None
    return eligible.sort_values("quote_id").iloc[0].to_dict()
