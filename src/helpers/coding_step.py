"""The coding step end to end: raw conversations and coding sheets in, every 03
output and ``summary_coding.json`` out.

Reading and agreement come from :mod:`helpers.coding` and :mod:`helpers.codebook`;
the analysis from :mod:`helpers.themes`, :mod:`helpers.saturation`,
:mod:`helpers.journeys`, :mod:`helpers.language` and :mod:`helpers.insights`.
When a month has no coding sheets, the codebook's keyword rules code it instead and
every output says the codes are suggestions, not people's coding.
"""

from __future__ import annotations

import logging
import math
import numbers

import pandas as pd

from helpers import coding, files, insights, journeys, language, saturation, themes
from helpers.codebook import Codebook, load_codebook, save_qdc
from helpers.errors import HeardInputError
from helpers.study import Study, load_study, previous_months

log = logging.getLogger(__name__)

TOP_THEMES = 5
TOP_PHRASES = 5
VALUE_COLUMNS = [
    "code",
    "name",
    "n_customers",
    "spend",
    "abandoned_value",
    "revenue_at_stake",
]
SOURCE_CONSENSUS = "consensus"
SOURCE_SUGGESTED = "suggested (keyword rules, not coded by people)"
OUTPUT_FILES = {
    "codings": "coded-excerpts_excerpt.parquet",
    "agreement": "agreement_code.parquet",
    "disagreements": "disagreements_excerpt.parquet",
    "consensus": "consensus_excerpt.parquet",
    "themes": "themes_code.parquet",
    "segment_tests": "theme-tests_code.parquet",
    "cooccurrence": "cooccurrence_code.parquet",
    "value": "theme-value_code.parquet",
    "saturation": "saturation_conversation.parquet",
    "saturation_verdict": "saturation_segment.parquet",
    "phrases": "phrases_phrase.parquet",
    "repeated_phrases": "repeated-phrases_phrase.parquet",
    "collocations": "collocations_phrase.parquet",
    "distinctive": "distinctive-phrases_phrase.parquet",
    "quotes": "quote-bank_quote.parquet",
    "journeys": "journeys_transition.parquet",
    "predictions": "predictions_prediction.parquet",
    "prediction_scores": "prediction-scores_caller.parquet",
    "prediction_months": "prediction-scores_month.parquet",
    "insights_open": "insights-open_insight.parquet",
}
# Workbooks for people, with redacted text: the blank sheet each coder copies to
# coding/<month>/<coder>.xlsx, and the queue saved as coding/<month>/reconciled.xlsx.
WORKBOOK_FILES = {
    "coding_sheet": "coding-sheet_excerpt.xlsx",
    "reconcile": "reconcile_excerpt.xlsx",
}
# The codebook as a REFI-QDA codebook, for NVivo, ATLAS.ti, MAXQDA or QualCoder.
QDC_FILE = "codebook_code.qdc"
AGREEMENT_UNITS = ("excerpt", "conversation")
# The whole-number settings under `coding:` and the least each may be.
COUNT_SETTINGS = {
    "excerpt_max_words": 1,
    "n_bootstrap": 0,
    "bootstrap_seed": 0,
    "saturation_run": 1,
}


def run_coding_step(study: str | Study, month: str, *, write: bool = True) -> dict:
    """Run the coding step for one month and write its processed files.

    Parameters
    ----------
    study : str or Study
        The study's name (or raw folder path), or a loaded :class:`Study`.
    month : str
        ``YYYY-MM``.
    write : bool
        Write the outputs atomically to ``data/processed/<study>/<month>/``,
        with the two workbooks of :func:`save_coding_workbooks`.

    Returns
    -------
    dict
        Every table named in ``OUTPUT_FILES`` (DataFrames), plus
        ``conversations``, ``coded_conversations`` (those the analysis counts:
        :func:`select_coded_conversations`), ``excerpts``,
        ``redacted_excerpts`` (for showing customers' words), ``codebook`` (the
        flat table),
        ``price_objection`` (a dict, None when the codebook has no
        ``coding.price_code``) and ``velocity`` (dicts), ``agreement_unit``,
        ``stages`` and ``summary`` (the content of ``summary_coding.json``).

    Raises
    ------
    HeardInputError
        From the readers: malformed notes, codebook or coding sheets; and a
        ``coding:`` setting out of range (:func:`read_coding_settings`).
    """
    study = study if isinstance(study, Study) else load_study(study)
    settings = read_coding_settings(study)
    codebook = load_codebook(study.raw("codebook.yml"))
    results = load_coding_inputs(study, month, codebook=codebook, settings=settings)
    results |= analyse_themes(results, study, month, settings=settings)
    results |= analyse_words(results)
    results |= analyse_journeys_and_predictions(results, study, month)
    results["summary"] = summarise_coding(results, month)
    if write:
        save_coding_outputs(results, study, month)
        save_coding_workbooks(results, codebook, study, month)
    return results


def read_coding_settings(study: Study) -> dict:
    """Return the study's ``coding:`` settings, checked.

    Parameters
    ----------
    study : Study
        Its ``config["coding"]``: ``defaults.yml`` overlaid with ``study.yml``.

    Returns
    -------
    dict
        The ``coding:`` block: ``excerpt_max_words``, ``agreement_unit``,
        ``n_bootstrap``, ``bootstrap_seed``, ``saturation_run``, ``price_code``.

    Raises
    ------
    HeardInputError
        Naming ``study.yml`` and the setting, when a count is not a whole number
        at least its minimum (``COUNT_SETTINGS``) or ``agreement_unit`` is
        neither ``excerpt`` nor ``conversation``, or ``price_code`` is not a code id.
    """
    settings = dict(study.config["coding"])
    for key, least in COUNT_SETTINGS.items():
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise setting_error(study, key, f"a whole number, at least {least}", value)
    price_code = settings.get("price_code")
    if not isinstance(price_code, str) or not price_code.strip():
        raise setting_error(
            study, "price_code", "a code id, e.g. OBJ-PRICE", price_code
        )
    if settings["agreement_unit"] not in AGREEMENT_UNITS:
        expected = " or ".join(AGREEMENT_UNITS)
        raise setting_error(
            study, "agreement_unit", expected, settings["agreement_unit"]
        )
    return settings


def setting_error(study: Study, key: str, expected: str, found) -> HeardInputError:
    """Return the error for a ``coding:`` setting out of range in ``study.yml``."""
    return HeardInputError(
        study.raw("study.yml"),
        column=f"coding.{key}",
        expected=expected,
        found=found,
        fix=f"set coding.{key} to {expected}, or remove it to use the default "
        "in src/helpers/defaults.yml",
    )


def split_month_excerpts(conversations: pd.DataFrame, *, settings: dict) -> tuple:
    """Return the excerpts coding sheets are read against, and the same redacted.

    Parameters
    ----------
    conversations : DataFrame
        From :func:`helpers.coding.load_conversations`.
    settings : dict
        From :func:`read_coding_settings`: turns longer than
        ``excerpt_max_words`` are split into sentences.

    Returns
    -------
    tuple of DataFrame
        ``(excerpts, redacted)``: :func:`helpers.coding.split_excerpts`, and its
        copy with e-mails, phones and known names redacted
        (:func:`helpers.language.redact_excerpts`), the text people see.
    """
    excerpts = coding.split_excerpts(
        conversations, max_words=settings["excerpt_max_words"]
    )
    return excerpts, language.redact_excerpts(excerpts, conversations)


def read_processed(study: Study, month: str, name: str) -> pd.DataFrame | None:
    """Return an earlier step's processed table, or None when it is not there."""
    path = study.processed(month, name)
    if not path.exists():
        log.warning("%s is missing: run the segment export step first", path)
        return None
    return pd.read_parquet(path)


def load_coding_inputs(
    study: Study, month: str, *, codebook: Codebook, settings: dict
) -> dict:
    """Return the conversations, excerpts, codebook, codings and the coding used.

    The coding used is the coders' consensus when the month has coding sheets,
    else the codebook's keyword suggestions (``coding_source`` says which).
    Excerpts are split and agreement computed as `settings` say
    (:func:`read_coding_settings`).
    """
    customers = read_processed(study, month, "customers_customer.parquet")
    known = set(customers["customer_key"]) if customers is not None else None
    conversations = coding.load_conversations(study, month, known_customers=known)
    excerpts, redacted = split_month_excerpts(conversations, settings=settings)
    suggestions = coding.suggest_codes(excerpts, codebook)

    # People's coding when there is any; the keyword rules only as a labelled stand-in.
    sheets = study.raw("coding", month)
    has_sheets = sheets.is_dir() and any(sheets.glob("*.xlsx"))
    codings = (
        coding.load_codings(
            study, month, codebook, excerpts=excerpts, redacted=redacted
        )
        if has_sheets
        else None
    )
    if codings is not None and len(coding.human_codings(codings)):
        compared = compare_coders(codings, study, month, codebook, settings=settings)
        source = SOURCE_CONSENSUS
    else:
        log.warning("no coding sheets for %s: using keyword suggestions", month)
        codings = suggestions.iloc[:0]
        compared = {
            "agreement": pd.DataFrame(),
            "disagreements": pd.DataFrame(),
            "consensus": suggestions[["conversation_id", "excerpt_id", "code"]],
        }
        source = SOURCE_SUGGESTED
    return {
        "codebook": codebook.table(),
        "conversations": conversations,
        "coded_conversations": select_coded_conversations(
            conversations, codings, source=source
        ),
        "excerpts": excerpts,
        "redacted_excerpts": redacted,
        "codings": pd.concat([codings, suggestions], ignore_index=True),
        **compared,
        "consensus": compared["consensus"].reset_index(drop=True),
        "coding_source": source,
        "agreement_unit": settings["agreement_unit"],
        "customers": customers,
    }


def select_coded_conversations(
    conversations: pd.DataFrame, codings: pd.DataFrame, *, source: str
) -> pd.DataFrame:
    """Return the conversations the analysis counts: those someone has coded.

    Parameters
    ----------
    conversations : DataFrame
        Every conversation of the month (:func:`helpers.coding.load_conversations`).
    codings : DataFrame
        People's codings (:func:`helpers.coding.load_codings`); suggestions are
        ignored. ``no code`` counts: the excerpt was read.
    source : str
        ``SOURCE_CONSENSUS`` or ``SOURCE_SUGGESTED``; the keyword rules code
        every conversation, so with suggestions all are kept.

    Returns
    -------
    DataFrame
        The rows of `conversations` with at least one excerpt coded by a person.

    Notes
    -----
    A conversation no coder has reached yet (its rows blank after the last
    coded row of every sheet) is not a conversation without themes: counted,
    it would lower every theme's share and, as a run of conversations adding
    no code, make the saturation rule stop. It is left out with a warning.
    """
    if source != SOURCE_CONSENSUS:
        return conversations
    read = set(coding.human_codings(codings)["conversation_id"])
    coded = conversations[conversations["conversation_id"].isin(read)]
    n_left = len(conversations) - len(coded)
    if n_left:
        log.warning(
            "%d of %d conversations have no coding yet (no coder has reached them): "
            "themes, saturation, journeys and prediction scores count the %d coded",
            n_left,
            len(conversations),
            len(coded),
        )
    return coded


def compare_coders(
    codings: pd.DataFrame,
    study: Study,
    month: str,
    codebook: Codebook,
    *,
    settings: dict,
) -> dict:
    """Return ``agreement``, ``disagreements`` and ``consensus`` of people's coding.

    Agreement is on ``agreement_unit`` with ``n_bootstrap`` replicates seeded by
    ``bootstrap_seed``; decisions come from ``coding/<month>/reconciled.xlsx``.
    """
    resolutions = coding.load_resolutions(study, month, codebook)
    agreement = coding.agreement_table(
        codings,
        codebook=codebook,
        unit=settings["agreement_unit"],
        n_boot=settings["n_bootstrap"],
        seed=settings["bootstrap_seed"],
    )
    return {
        "agreement": agreement,
        "disagreements": coding.disagreement_queue(codings, resolutions=resolutions),
        "consensus": coding.build_consensus(codings, resolutions=resolutions),
    }


def analyse_themes(inputs: dict, study: Study, month: str, *, settings: dict) -> dict:
    """Return theme rates, segment tests, co-occurrence, value and saturation
    (stopping after ``saturation_run`` conversations with no new code)."""
    coded, table = inputs["consensus"], inputs["codebook"]
    conversations = inputs["coded_conversations"]
    orders = read_processed(study, month, "orders_order.parquet")
    checkouts = read_processed(study, month, "checkouts_checkout.parquet")
    customers = inputs["customers"]

    # Non-buyers and value need the segment export; without it they stay empty.
    price_code = settings["price_code"]
    if orders is not None:
        price = themes.tally_theme_among_nonbuyers(
            coded, conversations, table, orders, month, code=price_code
        )
    else:
        price = {"code": price_code, "k": 0, "n": 0, "rate": math.nan}
        price |= {"ci_low": math.nan, "ci_high": math.nan, "n_customers": 0}
    if customers is not None and checkouts is not None:
        value = themes.weigh_themes_by_value(
            coded, conversations, table, customers, checkouts
        )
    else:
        value = pd.DataFrame(columns=VALUE_COLUMNS)
    curve = saturation.build_saturation_curve(coded, conversations, table)
    run = settings["saturation_run"]
    return {
        "themes": themes.tally_themes(coded, conversations, table),
        "segment_tests": themes.compare_segments(coded, conversations, table),
        "cooccurrence": themes.count_cooccurrence(coded, conversations, table),
        "value": value,
        "price_objection": price,
        "saturation": curve,
        "saturation_verdict": saturation.check_saturation(curve, run=run),
    }


def analyse_words(inputs: dict) -> dict:
    """Return phrases, collocations, distinctive phrases and the quote bank, all
    read from redacted text (``redacted_excerpts``, also for keyword in context)."""
    conversations, excerpts = inputs["conversations"], inputs["redacted_excerpts"]
    return {
        "phrases": language.count_phrases(excerpts),
        "repeated_phrases": language.list_repeated_phrases(excerpts),
        "collocations": language.find_collocations(excerpts),
        "distinctive": language.distinguish_phrases(excerpts, conversations),
        "quotes": language.build_quote_bank(
            excerpts, conversations, inputs["consensus"], inputs["codebook"]
        ),
    }


def analyse_journeys_and_predictions(inputs: dict, study: Study, month: str) -> dict:
    """Return journey transitions, scored predictions and insight velocity."""
    coded, table = inputs["consensus"], inputs["codebook"]
    conversations = inputs["coded_conversations"]
    stages = journeys.order_stages(coded, inputs["excerpts"], table)

    predictions = score_every_month(study, month, coded, conversations, table)

    # Insight velocity as of the month's last day.
    velocity = None
    if study.raw("insights.csv").exists():
        log_frame = insights.load_insights(
            study.raw("insights.csv"), codes=table["code"].tolist()
        )
        as_of = pd.Period(month, "M").end_time.normalize()
        velocity = insights.summarise_insight_velocity(log_frame, as_of=as_of)
    return {
        "stages": stages,
        "journeys": journeys.tally_transitions(stages, conversations),
        **predictions,
        "velocity": velocity,
        "insights_open": velocity["open"] if velocity else pd.DataFrame(),
    }


def score_every_month(
    study: Study,
    month: str,
    coded: pd.DataFrame,
    conversations: pd.DataFrame,
    codebook: pd.DataFrame,
) -> dict:
    """Return this month's scored predictions and scores for it and earlier months.

    Returns
    -------
    dict
        ``predictions`` (this month, scored), ``prediction_scores`` (month x
        caller) and ``prediction_months`` (month), each empty when there are no
        predictions; earlier months are read from their own processed outputs.
    """
    path = study.raw("predictions", f"{month}.csv")
    scored = pd.DataFrame()
    if path.exists():
        matrix = themes.build_theme_matrix(coded, conversations, codebook)
        predictions = insights.load_predictions(
            path, month=month, codes=list(codebook["code"])
        )
        scored = insights.score_predictions(predictions, matrix, conversations)
    history = [
        pd.read_parquet(earlier_path)
        for earlier in previous_months(study, month)
        if (
            earlier_path := study.processed(earlier, OUTPUT_FILES["predictions"])
        ).exists()
    ]
    every_month = pd.concat([*history, scored], ignore_index=True)
    if "is_scored" not in every_month:
        return {
            "predictions": scored,
            "prediction_scores": pd.DataFrame(),
            "prediction_months": pd.DataFrame(),
        }
    return {
        "predictions": scored,
        "prediction_scores": insights.tally_prediction_scores(every_month),
        "prediction_months": insights.tally_prediction_scores(
            every_month, by=("month",)
        ),
    }


def summarise_coding(results: dict, month: str) -> dict:
    """Return the content of ``summary_coding.json`` (keys in docs/study-folder.md)."""
    ranked = themes.rank_themes(results["themes"], codebook=results["codebook"])
    ranked = ranked[ranked["n_with_theme"] > 0]
    top = []
    for row in ranked.head(TOP_THEMES).itertuples(index=False):
        quote = language.select_quote(results["quotes"], row.code, results["codebook"])
        top.append(
            {
                "code": row.code,
                "name": row.name,
                "k": int(row.n_with_theme),
                "n": int(row.n_conversations),
                "rate": float(row.rate),
                "ci_low": float(row.ci_low),
                "ci_high": float(row.ci_high),
                "quote_id": quote["quote_id"] if quote else None,
                "quote": quote["text"] if quote else None,
            }
        )
    verdict = results["saturation_verdict"].set_index("segment")
    summary = {
        "n_conversations": len(results["conversations"]),
        "n_conversations_coded": len(results["coded_conversations"]),
        "n_excerpts": len(results["excerpts"]),
        "coding_source": results["coding_source"],
        "top_themes": top,
        "top_phrases": [
            clean_numbers(row)
            for row in results["repeated_phrases"][language.PHRASE_COLUMNS]
            .head(TOP_PHRASES)
            .to_dict("records")
        ],
        "price_objection": (
            clean_numbers(results["price_objection"])
            if results["price_objection"] is not None
            else None
        ),
        "is_saturated": bool(verdict.loc[themes.ALL_SEGMENTS, "is_saturated"]),
        "saturation_run": int(verdict.loc[themes.ALL_SEGMENTS, "run"]),
        "predictions": summarise_predictions(results["prediction_months"], month),
        **summarise_overall_agreement(
            results["agreement"], unit=results["agreement_unit"]
        ),
        **summarise_velocity(results["velocity"]),
    }
    return summary


def summarise_overall_agreement(agreement: pd.DataFrame, *, unit: str) -> dict:
    """Return the overall ``kappa`` and ``alpha`` (None when undefined or absent),
    and ``agreement``: the overall row with its bootstrap intervals (None without
    coding sheets)."""
    if agreement.empty or coding.OVERALL not in set(agreement["code"]):
        return {"kappa": None, "alpha": None, "agreement": None}
    overall = agreement.set_index("code").loc[coding.OVERALL]
    intervals = {
        name: clean_numbers(
            {
                "estimate": overall[name],
                "ci_low": overall[f"{name}_ci_low"],
                "ci_high": overall[f"{name}_ci_high"],
            }
        )
        for name in ("percent_agreement", "kappa", "alpha")
    }
    counts = {key: int(overall[key]) for key in ("n_units", "n_coders", "n_applied")}
    return {
        "agreement": {"unit": unit, **counts, **intervals, "status": overall["status"]},
        "kappa": files.none_if_nan(overall["kappa"]),
        "alpha": files.none_if_nan(overall["alpha"]),
    }


def summarise_predictions(months: pd.DataFrame, month: str) -> dict | None:
    """Return this month's prediction accuracy and Brier score, or None.

    The latest earlier month with scored predictions comes along as
    ``previous`` (``month``, ``k``, ``n``, ``rate``, ``ci_low``, ``ci_high``,
    ``brier_score``; None when there is none), so the report can say whether
    the team's predictions are improving.
    """
    if months.empty or month not in set(months["month"]):
        return None
    rows = months.set_index("month")
    earlier = sorted(m for m in rows.index if m < month)
    previous = None
    if earlier:
        previous = {"month": earlier[-1], **_prediction_numbers(rows.loc[earlier[-1]])}
    return {**_prediction_numbers(rows.loc[month]), "previous": previous}


def _prediction_numbers(row: pd.Series) -> dict:
    """Return one month's ``k``, ``n``, ``rate``, interval and Brier score."""
    return clean_numbers(
        {
            "k": int(row["n_correct"]),
            "n": int(row["n_predictions"]),
            "rate": row["accuracy_rate"],
            "ci_low": row["ci_low"],
            "ci_high": row["ci_high"],
            "brier_score": row["brier_score"],
        }
    )


def summarise_velocity(velocity: dict | None) -> dict:
    """Return the insight-velocity numbers for the summary, with ``n_open`` and
    ``open_by_age`` (age band -> points still open)."""
    if velocity is None:
        return {"insights": None}
    keys = ["n_found", "n_addressed", "addressed_rate", "median_days_to_address"]
    by_age = velocity["open_by_age"]
    return {
        "insights": clean_numbers({key: velocity[key] for key in keys})
        | {
            "n_open": len(velocity["open"]),
            "open_by_age": {
                str(band): int(n)
                for band, n in zip(by_age["age_band"], by_age["n_open"], strict=True)
            },
        }
    }


def clean_numbers(values: dict) -> dict:
    """Return `values` with NaN replaced by None and numpy numbers made plain."""
    cleaned = {}
    for key, value in values.items():
        if value is None or isinstance(value, (str, bool)):
            cleaned[key] = value
        elif isinstance(value, numbers.Integral):
            cleaned[key] = int(value)
        else:
            cleaned[key] = files.none_if_nan(float(value))
    return cleaned


def save_coding_outputs(results: dict, study: Study, month: str) -> dict:
    """Write every table and the summary atomically; return name -> path."""
    paths = {}
    for key, name in OUTPUT_FILES.items():
        frame = results.get(key)
        if not isinstance(frame, pd.DataFrame):
            continue
        if key == "cooccurrence":
            frame = frame.reset_index()
        target = study.processed(month, name)
        paths[key] = files.save_parquet(frame, target)
    target = study.processed(month, "summary_coding.json")
    paths["summary"] = files.save_json(results["summary"], target)
    log.info("coding step wrote %d files for %s", len(paths), month)
    return paths


def save_coding_workbooks(
    results: dict, codebook: Codebook, study: Study, month: str
) -> dict:
    """Write the workbooks people fill in, atomically; return name -> path.

    Parameters
    ----------
    results : dict
        From :func:`run_coding_step`: ``redacted_excerpts`` and ``disagreements``.
    codebook : Codebook
        Its codable ids fill the code drop-downs.
    study : Study
        The study.
    month : str
        ``YYYY-MM``.

    Returns
    -------
    dict
        ``coding_sheet``: the blank coding sheet (columns as
        :func:`helpers.coding.write_coding_sheet`), which each coder copies to
        ``coding/<month>/<coder>.xlsx``; ``reconcile`` (only when coders
        disagree): the queue (:data:`helpers.coding.QUEUE_COLUMNS`, ``text``,
        ``decision`` from a drop-down, ``note``), saved filled in as
        ``coding/<month>/reconciled.xlsx``; ``codebook_qdc``: the codebook
        as a REFI-QDA codebook (:func:`helpers.codebook.save_qdc`), to import
        into a QDA tool.

    Notes
    -----
    Both show the redacted text (no e-mail, phone or interviewer's name), and
    ``helpers.checks.scan_outputs`` scans them with every processed file; a
    sheet made from the blank one still reads back against the notes. The
    queue names the coders, as ``disagreements_excerpt.parquet`` does, and
    fills in decisions already in ``reconciled.xlsx``. With no disagreement
    left, an earlier queue is removed: it would ask to settle nothing.

    Limitations: a name the customer says in passing (their own, a friend's)
    is not known to Heard and is not redacted; look over a sheet before
    sending it outside the team.
    """
    redacted = results["redacted_excerpts"]
    paths = {
        "coding_sheet": coding.write_coding_sheet(
            redacted, codebook, study.processed(month, WORKBOOK_FILES["coding_sheet"])
        ),
        "codebook_qdc": save_qdc(codebook, study.processed(month, QDC_FILE)),
    }

    # The queue with each excerpt's redacted text beside its codings.
    queue = results["disagreements"]
    target = study.processed(month, WORKBOOK_FILES["reconcile"])
    if len(queue):
        texts = redacted.set_index("excerpt_id")["text"]
        sheet = queue.assign(text=queue["excerpt_id"].map(texts))
        sheet = sheet[[*coding.QUEUE_COLUMNS, "text", "decision", "note"]]
        paths["reconcile"] = coding.write_reconciliation_sheet(sheet, target)
    elif target.exists():
        target.unlink()
        log.info("no disagreements in %s: removed %s", month, target)
    log.info("wrote %s for coders", ", ".join(p.name for p in paths.values()))
    return paths
