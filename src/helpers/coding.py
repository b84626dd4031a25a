"""Coding conversations: notes and transcripts in, excerpts, codings and agreement out.

A month's conversations sit in ``data/raw/<study>/conversations/<YYYY-MM>/`` as
Markdown notes with YAML front matter, plain text, WebVTT or SRT transcripts (each
with a ``<stem>.yml`` beside it for the front matter) or one CSV with a row per
conversation. They are split into excerpts (customer turns, or sentences of a long
turn) whose ids derive from raw only, coded blind by two or more people in XLSX
coding sheets, and compared unit by unit: percent agreement, Cohen's kappa and
Krippendorff's alpha, each with a bootstrap interval. Agreed codes plus resolved
disagreements form the consensus coding the analysis reads.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from helpers.errors import HeardInputError
from helpers.files import open_raw, save_xlsx
from helpers.schemas import CONVERSATIONS, validate

log = logging.getLogger(__name__)

CONVERSATION_COLUMNS = [
    "conversation_id",
    "customer_key",
    "date",
    "segment",
    "interviewer",
    "consent_to_quote",
    "source_file",
    "text",
]
EXCERPT_COLUMNS = [
    "conversation_id",
    "excerpt_id",
    "position",
    "speaker",
    "is_customer",
    "text",
]
TRANSCRIPT_SUFFIXES = (".vtt", ".srt", ".txt")
CONVERSATION_SUFFIXES = (".md", ".markdown", *TRANSCRIPT_SUFFIXES, ".csv")
SIDECAR_SUFFIXES = (".yml", ".yaml")

# Speaker labels that name a role rather than a person (compared case-folded).
INTERVIEWER_LABELS = {
    "interviewer", "int", "i", "q", "researcher", "caller", "host", "moderator",
    "agent", "support",
}  # fmt: skip
CUSTOMER_LABELS = {
    "customer", "cust", "c", "a", "respondent", "participant", "p", "buyer",
}  # fmt: skip
NOTE = "note"
TRUE_WORDS = {"true", "yes", "y", "1", "on"}
FALSE_WORDS = {"false", "no", "n", "0", "off", ""}

# "Name: text" where the name is at most four words and holds no digits except in
# "Speaker 2"-style labels; the colon must be followed by a space.
LABEL_PATTERN = re.compile(
    r"^\s*(?:\*\*)?(?P<label>[^\W\d_][\w.'’-]*(?: [\w.'’-]+){0,3}?)(?:\*\*)?"
    r"\s*:(?:\*\*)?\s+(?P<text>\S.*)$"
)
CUE_TIME = re.compile(r"\d{1,2}:\d{2}(?::\d{2})?[.,]\d{3}\s*-->")
VOICE_TAG = re.compile(r"<v(?:\.[\w.-]+)?\s+(?P<label>[^>]+)>(?P<text>.*?)(?:</v>|$)")
ANY_TAG = re.compile(r"</?[a-z][^>]*>", re.I)
ZOOM_TXT_HEADER = re.compile(r"^\[(?P<label>[^\]]+)\]\s+\d{1,2}:\d{2}(?::\d{2})?\s*$")
OTTER_HEADER = re.compile(r"^(?P<label>\S.*?)\s{2,}\d{1,2}:\d{2}(?::\d{2})?\s*$")
TIMESTAMP_LINE = re.compile(r"^\s*\d{1,2}:\d{2}(?::\d{2})?\s*$")
DEFAULT_MAX_WORDS = 40
ABBREVIATIONS = {"e.g", "i.e", "etc", "vs", "mr", "mrs", "ms", "dr", "approx", "st"}


# --------------------------------------------------------------------------------
# Conversations
# --------------------------------------------------------------------------------


def load_conversations(
    study, month: str, *, known_customers: set[str] | None = None
) -> pd.DataFrame:
    """Load a month's conversations from the study's raw folder.

    Parameters
    ----------
    study : Study
        The study (:func:`helpers.study.load_study`).
    month : str
        ``YYYY-MM``; reads ``conversations/<month>/``.
    known_customers : set of str, optional
        When given, every ``customer_key`` must be in it.

    Returns
    -------
    DataFrame
        One row per conversation: ``conversation_id``, ``customer_key``, ``date``,
        ``segment``, ``interviewer``, ``consent_to_quote``, ``source_file``,
        ``text`` (speaker labels replaced by ``Interviewer``/``Customer``).

    Raises
    ------
    HeardInputError
        Missing folder, malformed front matter, duplicate ids, unknown customers.
    """
    folder = study.raw("conversations", month)
    return read_conversations(folder, known_customers=known_customers)


def read_conversations(
    folder: Path, *, known_customers: set[str] | None = None
) -> pd.DataFrame:
    """Read every conversation file in `folder`; see :func:`load_conversations`.

    Notes
    -----
    Markdown files carry YAML front matter. ``.vtt``, ``.srt`` and ``.txt``
    transcripts take theirs from a ``<stem>.yml`` beside them (a ``.txt`` may also
    start with front matter). A ``.csv`` holds one conversation per row. Hidden
    files and the sidecar ``.yml`` files are skipped; other files are logged and
    skipped.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise HeardInputError(
            folder,
            expected="a folder of conversation notes",
            found="nothing there",
            fix="put one Markdown file per conversation in this folder "
            "(see docs/study-folder.md)",
        )

    # Read each file into records that remember where each field came from.
    records = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        suffix = path.suffix.lower()
        if suffix in SIDECAR_SUFFIXES:
            continue
        if suffix not in CONVERSATION_SUFFIXES:
            log.warning("skipped %s: not a conversation file", path)
            continue
        records.extend(read_conversation_file(path))

    # Check ids and customers across files, then tidy the table.
    check_conversation_records(records, known_customers=known_customers)
    frame = pd.DataFrame(
        [record["fields"] for record in records], columns=CONVERSATION_COLUMNS
    )
    frame["date"] = pd.to_datetime(frame["date"])
    frame["consent_to_quote"] = frame["consent_to_quote"].astype(bool)
    log.info("read %d conversations from %s", len(frame), folder)
    frame = frame.sort_values(["date", "conversation_id"], ignore_index=True)
    return validate(frame, CONVERSATIONS, file=folder)


def read_conversation_file(path: Path) -> list[dict]:
    """Read one conversation file into records.

    Returns
    -------
    list of dict
        Each ``{"fields": {...}, "lines": {field: line}, "file": path}``; a CSV
        gives one record per row, other files one record.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_conversation_csv(path)
    raw_text = read_note_text(path)

    # Front matter at the top, else a sidecar file for transcripts.
    meta, lines, body = split_front_matter(raw_text, path)
    if meta is None and suffix in TRANSCRIPT_SUFFIXES:
        meta, lines, meta_file = read_sidecar(path)
    else:
        meta_file = path
    if meta is None:
        raise HeardInputError(
            path,
            row=1,
            expected="YAML front matter between two '---' lines at the top",
            found=raw_text.split("\n", 1)[0] or "an empty first line",
            fix="start the file with ---, then conversation_id, customer_key, date, "
            "segment, interviewer, consent_to_quote on their own lines, then ---"
            + (
                f"; or put those lines in {path.stem}.yml beside this transcript"
                if suffix in TRANSCRIPT_SUFFIXES
                else ""
            ),
        )

    # Turn transcript cues into "Name: text" lines; then names into roles.
    is_transcript = suffix in (".vtt", ".srt") or has_speaker_headers(body)
    body = transcript_to_lines(body, suffix)
    fields = build_conversation_fields(meta, lines, meta_file, default_id=path.stem)
    fields["source_file"] = path.name
    fields["text"] = label_roles(
        body,
        interviewer=fields["interviewer"],
        is_transcript=is_transcript,
    )
    return [{"fields": fields, "lines": lines, "file": meta_file}]


def read_note_text(path: Path) -> str:
    """Return a note's text decoded as UTF-8 (a BOM dropped), newlines as ``\\n``.

    Raises
    ------
    HeardInputError
        Bytes that are not UTF-8, naming their line.
    """
    with open_raw(path) as handle:
        raw_bytes = handle.read()
    try:
        raw_text = raw_bytes.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise HeardInputError(
            path,
            row=raw_bytes.count(b"\n", 0, error.start) + 1,
            expected="UTF-8 text",
            found=f"byte {raw_bytes[error.start]:#04x}, not UTF-8",
            fix="save the notes as UTF-8 (most editors: Save as, Encoding: UTF-8)",
        ) from error
    return raw_text.replace("\r\n", "\n").replace("\r", "\n")


def transcript_to_lines(body: str, suffix: str) -> str:
    """Return a WebVTT, SRT or text transcript as "Name: text" lines; other
    bodies unchanged."""
    if suffix == ".vtt":
        return vtt_to_lines(body)
    if suffix == ".srt":
        return srt_to_lines(body)
    if suffix == ".txt":
        return txt_to_lines(body)
    return body


def split_front_matter(text: str, path: Path) -> tuple:
    """Split YAML front matter from the body.

    Returns
    -------
    tuple
        ``(meta, lines, body)``: the mapping (None when the file has no
        front matter), each key's line in the file and the body.
    """
    if not text.startswith("---\n") and text.strip() != "---":
        return None, {}, text
    rest = text[4:]
    closing = re.search(r"^(---|\.\.\.)[ \t]*$", rest, flags=re.M)
    if closing is None:
        raise HeardInputError(
            path,
            row=1,
            expected="front matter closed by a '---' line",
            found="no closing '---'",
            fix="add a line with --- after the last front-matter key",
        )
    block = rest[: closing.start()]
    meta, lines = parse_yaml_mapping(block, path, first_line=2)
    return meta, lines, rest[closing.end() :].lstrip("\n")


def parse_yaml_mapping(block: str, path: Path, *, first_line: int) -> tuple:
    """Parse a YAML mapping with every value kept as text.

    Every scalar stays a string (YAML's base loader) so ``2026-11-07`` stays an
    id rather than becoming a date and ``007`` keeps its zeros.

    Returns
    -------
    tuple
        ``(mapping, lines)``: values as strings, and each key's line in the file.
    """
    try:
        node = yaml.compose(block, Loader=yaml.BaseLoader)
    except yaml.YAMLError as error:
        # The context mark is where the broken construct began (an unclosed
        # bracket), nearer the typo than where the parser gave up.
        mark = getattr(error, "context_mark", None) or getattr(
            error, "problem_mark", None
        )
        raise HeardInputError(
            path,
            row=first_line + mark.line if mark else first_line,
            expected="valid YAML front matter (key: value on each line)",
            found=str(getattr(error, "problem", error)),
            fix="check the colon, indentation and quotes on that line",
        ) from error
    if node is None:
        return {}, {}
    if not isinstance(node, yaml.MappingNode):
        raise HeardInputError(
            path,
            row=first_line,
            expected="front matter made of key: value lines",
            found=block.strip().split("\n", 1)[0],
            fix="write each field as `key: value`",
        )
    mapping, lines = {}, {}
    for key_node, value_node in node.value:
        key = str(key_node.value).strip().lower()
        value = value_node.value if isinstance(value_node, yaml.ScalarNode) else None
        mapping[key] = value
        lines[key] = first_line + key_node.start_mark.line
    return mapping, lines


def read_sidecar(path: Path) -> tuple:
    """Read the ``<stem>.yml`` beside a transcript; ``(None, {}, path)`` if absent."""
    for suffix in SIDECAR_SUFFIXES:
        sidecar = path.with_suffix(suffix)
        if sidecar.exists():
            with open_raw(sidecar) as handle:
                text = handle.read().decode("utf-8-sig")
            meta, lines = parse_yaml_mapping(text, sidecar, first_line=1)
            return meta, lines, sidecar
    return None, {}, path


def build_conversation_fields(
    meta: dict, lines: dict, path: Path, *, default_id: str
) -> dict:
    """Check and convert front-matter values into a conversation's fields."""
    fields = {}
    conversation_id = (meta.get("conversation_id") or default_id or "").strip()
    if not re.fullmatch(r"[\w.-]+", conversation_id):
        raise HeardInputError(
            path,
            row=lines.get("conversation_id"),
            column="conversation_id",
            expected="an id of letters, digits, '-', '_' or '.'",
            found=conversation_id,
            fix="use the file name without spaces, e.g. 2026-11-07",
        )
    fields["conversation_id"] = conversation_id
    customer_key = (meta.get("customer_key") or "").strip()
    if not customer_key:
        raise HeardInputError(
            path,
            row=lines.get("customer_key"),
            column="customer_key",
            expected="the customer's key (the call list's reference)",
            found="nothing",
            fix="add `customer_key: c_…` to the front matter",
        )
    fields["customer_key"] = customer_key
    fields["date"] = parse_date(meta.get("date"), path, lines.get("date"))
    fields["segment"] = (meta.get("segment") or "").strip() or None
    fields["interviewer"] = (meta.get("interviewer") or "").strip() or None
    fields["consent_to_quote"] = parse_flag(
        meta.get("consent_to_quote"), path, lines.get("consent_to_quote")
    )
    return fields


def parse_date(value, path: Path, line: int | None):
    """Return an ISO date string as a date; missing gives None."""
    if value is None or not str(value).strip():
        return None
    try:
        return dt.date.fromisoformat(str(value).strip()[:10])
    except ValueError as error:
        raise HeardInputError(
            path,
            row=line,
            column="date",
            expected="a date like 2026-11-09",
            found=value,
            fix="write the date as YYYY-MM-DD",
        ) from error


def parse_flag(value, path: Path, line: int | None) -> bool:
    """Return a yes/no value as bool; missing means no (no consent unless given)."""
    word = "" if value is None else str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise HeardInputError(
        path,
        row=line,
        column="consent_to_quote",
        expected="true or false",
        found=value,
        fix="write consent_to_quote: true only when the customer agreed to be quoted",
    )


def read_conversation_csv(path: Path) -> list[dict]:
    """Read a CSV with one conversation per row into records (encoding and
    delimiter recognised as for store exports: :func:`helpers.exports.sniff_file`)."""
    from helpers.exports import read_text_table

    table = read_text_table(path)
    table.columns = [str(c).strip().lstrip("\ufeff").lower() for c in table.columns]
    for column in ("conversation_id", "customer_key", "text"):
        if column not in table.columns:
            raise HeardInputError(
                path,
                row=1,
                column=column,
                expected=f"a column named {column}",
                found=", ".join(table.columns),
                fix="name the columns conversation_id, customer_key, date, segment, "
                "interviewer, consent_to_quote, text",
            )
    records = []
    for index, row in enumerate(table.to_dict("records"), start=2):
        lines = dict.fromkeys(row, index)
        fields = build_conversation_fields(row, lines, path, default_id="")
        fields["source_file"] = path.name
        text = str(row["text"]).replace("\r\n", "\n")
        fields["text"] = label_roles(text, interviewer=fields["interviewer"])
        records.append({"fields": fields, "lines": lines, "file": path})
    return records


def check_conversation_records(
    records: list[dict], *, known_customers: set[str] | None
) -> None:
    """Raise on a duplicate conversation id or a customer not in `known_customers`."""
    seen: dict[str, str] = {}
    for record in records:
        fields, where = record["fields"], record["file"]
        conversation_id = fields["conversation_id"]
        if conversation_id in seen:
            raise HeardInputError(
                where,
                row=record["lines"].get("conversation_id"),
                column="conversation_id",
                expected="an id used by one conversation only",
                found=f"{conversation_id} (also in {seen[conversation_id]})",
                fix="give each conversation its own id",
            )
        seen[conversation_id] = Path(where).name
        if (
            known_customers is not None
            and fields["customer_key"] not in known_customers
        ):
            raise HeardInputError(
                where,
                row=record["lines"].get("customer_key"),
                column="customer_key",
                expected="a customer_key of a customer in the month's store exports "
                "(customers_customer.parquet)",
                found=fields["customer_key"],
                fix="copy the customer's reference from the call list or the "
                "customers file; a customer missing from the exports needs a newer "
                "export",
            )


# --------------------------------------------------------------------------------
# Transcripts: cues into "Name: text" lines
# --------------------------------------------------------------------------------


def vtt_to_lines(body: str) -> str:
    """Return a WebVTT transcript (Zoom or Teams) as ``Name: text`` lines.

    Notes
    -----
    Consecutive cues of one speaker join into one turn. Limitations: a cue
    without a speaker (Zoom's unknown speaker) continues the previous turn, so
    its words are credited to whoever spoke before.
    """
    turns = []
    for block in re.split(r"\n\s*\n", body):
        cue = block.strip().split("\n")
        timing = next((i for i, line in enumerate(cue) if "-->" in line), None)
        if timing is None:
            continue  # the WEBVTT header, NOTE and STYLE blocks
        text = " ".join(cue[timing + 1 :]).strip()
        voice = VOICE_TAG.search(text)
        if voice:
            label, said = voice["label"].strip(), ANY_TAG.sub("", voice["text"])
        else:
            label, said = split_label(ANY_TAG.sub("", text))
        turns.append((label, said.strip()))
    return join_turns(turns)


def srt_to_lines(body: str) -> str:
    """Return a SubRip transcript as ``Name: text`` lines."""
    turns = []
    for block in re.split(r"\n\s*\n", body):
        cue = block.strip().split("\n")
        timing = next((i for i, line in enumerate(cue) if "-->" in line), None)
        if timing is None:
            continue
        text = ANY_TAG.sub("", " ".join(cue[timing + 1 :])).strip()
        turns.append(split_label(text))
    return join_turns(turns)


def txt_to_lines(body: str) -> str:
    """Return a text transcript as ``Name: text`` lines.

    Recognises Zoom's local ``[Name] 00:01:02`` header lines, Otter's
    ``Name  0:02`` header lines and Google Meet's layout (everything up to a
    ``Transcript`` line, and bare timestamp lines, dropped). Other text is kept.
    """
    lines = body.split("\n")
    if is_meet_layout(lines):
        lines = lines[[line.strip() for line in lines].index("Transcript") + 1 :]
    turns, label = [], None
    for line in lines:
        header = ZOOM_TXT_HEADER.match(line) or OTTER_HEADER.match(line)
        if header:
            label = header["label"].strip()
        elif TIMESTAMP_LINE.match(line) or not line.strip():
            continue
        elif label is not None:
            turns.append((label, line.strip()))
        else:
            turns.append(split_label(line.strip()))
    return join_turns(turns)


def has_speaker_headers(body: str) -> bool:
    """True when a text file is a recorded transcript: Zoom or Otter
    speaker-and-time lines, or Google Meet's layout."""
    lines = body.split("\n")
    return is_meet_layout(lines) or any(
        ZOOM_TXT_HEADER.match(line) or OTTER_HEADER.match(line) for line in lines
    )


def is_meet_layout(lines: list[str]) -> bool:
    """True for Google Meet's text export: an ``Attendees`` line near the top and
    a ``Transcript`` line before the turns."""
    stripped = [line.strip() for line in lines]
    return "Attendees" in stripped[:5] and "Transcript" in stripped


def split_label(text: str) -> tuple:
    """Split ``Name: text`` at the first colon when the part before is name-like."""
    match = LABEL_PATTERN.match(text)
    if match:
        return match["label"].strip(), match["text"].strip()
    return None, text


def join_turns(turns: list[tuple]) -> str:
    """Join (label, text) pairs into lines, merging a speaker's consecutive cues."""
    merged: list[list] = []
    for label, said in turns:
        if not said:
            continue
        if merged and label == merged[-1][0]:
            merged[-1][1] += " " + said
        else:
            merged.append([label, said])
    return "\n".join(f"{label}: {said}" if label else said for label, said in merged)


# --------------------------------------------------------------------------------
# Speaker roles and excerpts
# --------------------------------------------------------------------------------


def label_roles(
    text: str, *, interviewer: str | None = None, is_transcript: bool = False
) -> str:
    """Return `text` with speaker labels replaced by ``Interviewer``/``Customer``.

    Parameters
    ----------
    text : str
        Lines, some starting ``Label: ``.
    interviewer : str, optional
        The interviewer's name as in the front matter.
    is_transcript : bool
        True when the labels come from a transcript's cues, so every label is a
        speaker; in notes a label must pass the rule below.

    Returns
    -------
    str
        The same lines; labels that name a person are replaced by their role so
        that no speaker's name leaves the raw folder. Unlabelled lines are kept.

    Notes
    -----
    A label is the interviewer when it is a role word (Interviewer, Q, Caller, …)
    or matches the interviewer's name (whole, or by first name); a customer when
    it is a role word (Customer, A, Respondent, …). In notes any other label
    counts only when it starts two or more lines, or when the file has no role
    words at all, so ``Honestly: it was the price`` stays the customer's text.
    Of those other speakers, the first is the interviewer when no label matched
    the interviewer (a warning says so); the rest are customers.
    """
    turns = [(line, *split_label(line)) for line in text.split("\n")]
    labels = [label for _, label, _ in turns]
    roles = assign_roles(labels, interviewer=interviewer, is_transcript=is_transcript)
    out = []
    for line, label, said in turns:
        role = roles.get(label) if label else None
        out.append(f"{role}: {said}" if role else line)
    return "\n".join(out)


def assign_roles(
    labels: list, *, interviewer: str | None, is_transcript: bool = False
) -> dict:
    """Map each speaker label to ``Interviewer`` or ``Customer``; see
    :func:`label_roles` for the rule. Labels left out are not speaker labels."""
    present = [label for label in labels if label]
    counts = pd.Series(present, dtype=object).value_counts().to_dict()
    is_interviewer = {
        label: label.casefold() in INTERVIEWER_LABELS
        or matches_name(label, interviewer)
        for label in present
    }
    has_role_words = any(
        is_interviewer[label] or label.casefold() in CUSTOMER_LABELS
        for label in present
    )
    has_interviewer = any(is_interviewer.values())

    roles = {}
    for label in dict.fromkeys(present):
        if is_interviewer[label]:
            roles[label] = "Interviewer"
        elif label.casefold() in CUSTOMER_LABELS:
            roles[label] = "Customer"
        elif is_transcript or counts[label] >= 2 or not has_role_words:
            roles[label] = "Customer" if has_interviewer else "Interviewer"
            if not has_interviewer:
                log.warning(
                    "no speaker label matched the interviewer %r; took the first "
                    "speaker as the interviewer",
                    interviewer,
                )
            has_interviewer = True
    return roles


def matches_name(label: str, name: str | None) -> bool:
    """True when `label` is `name`, or shares its first name (case-folded)."""
    if not name or not name.strip():
        return False
    label_words, name_words = label.casefold().split(), name.casefold().split()
    return label_words == name_words or label_words[0] == name_words[0]


def split_excerpts(
    conversations: pd.DataFrame, *, max_words: int = DEFAULT_MAX_WORDS
) -> pd.DataFrame:
    """Split conversations into excerpts: one per turn, or per sentence of a long turn.

    Parameters
    ----------
    conversations : DataFrame
        At least ``conversation_id`` and ``text``; ``interviewer`` is used to tell
        the interviewer's lines when present.
    max_words : int
        A turn longer than this is split into sentences.

    Returns
    -------
    DataFrame
        One row per excerpt: ``conversation_id``, ``excerpt_id``
        (``f"{conversation_id}-{position:03d}"``), ``position`` (from 1 within the
        conversation, counting every excerpt, the interviewer's too), ``speaker``
        (``interviewer``, ``customer`` or ``note`` for unlabelled text),
        ``is_customer``, ``text``.

    Notes
    -----
    Ids derive from the raw text only, so they survive re-runs. A line without a
    label continues the turn above it; text before any label is a ``note`` (the
    interviewer's summary, not the customer's own words, so ``is_customer`` is
    False). Sentences come from NLTK's Punkt tokeniser with its default
    parameters and a few abbreviations (no downloaded model).
    """
    rows = []
    for conversation in conversations.itertuples(index=False):
        interviewer = getattr(conversation, "interviewer", None)
        interviewer = interviewer if isinstance(interviewer, str) else None
        raw_text = conversation.text if isinstance(conversation.text, str) else ""
        text = label_roles(raw_text, interviewer=interviewer)
        position = 0
        for speaker, said in parse_turns(text):
            for piece in split_long_turn(said, max_words=max_words):
                position += 1
                rows.append(
                    {
                        "conversation_id": conversation.conversation_id,
                        "excerpt_id": f"{conversation.conversation_id}-{position:03d}",
                        "position": position,
                        "speaker": speaker,
                        "is_customer": speaker == "customer",
                        "text": piece,
                    }
                )
    excerpts = pd.DataFrame(rows, columns=EXCERPT_COLUMNS)
    excerpts["position"] = excerpts["position"].astype("int64")
    excerpts["is_customer"] = excerpts["is_customer"].astype(bool)
    log.info("split %d conversations into %d excerpts", len(conversations), len(rows))
    warn_without_customer(conversations, excerpts)
    return excerpts


def warn_without_customer(conversations: pd.DataFrame, excerpts: pd.DataFrame) -> None:
    """Log a warning naming conversations with no customer turn: they are coded,
    but none of their words reach phrases, keyword views or quotes."""
    spoke = set(excerpts.loc[excerpts["is_customer"], "conversation_id"])
    silent = [c for c in conversations["conversation_id"] if c not in spoke]
    if silent:
        log.warning(
            "%d conversation(s) without a customer turn: %s; their words are left "
            "out of phrases and quotes (label the customer's lines 'Customer:')",
            len(silent),
            ", ".join(map(str, silent)),
        )


def parse_turns(text: str) -> list[tuple]:
    """Return ``(speaker, text)`` turns from role-labelled lines."""
    turns: list[list] = []
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # blank lines and Markdown headings carry no speech
        match = re.match(r"^(Interviewer|Customer): (.*)$", stripped)
        if match:
            turns.append([match[1].lower(), match[2].strip()])
        elif turns:
            turns[-1][1] += " " + stripped
        else:
            turns.append([NOTE, stripped])
    return [(speaker, said) for speaker, said in turns if said]


def split_long_turn(text: str, *, max_words: int) -> list[str]:
    """Return `text` whole, or its sentences when it has more than `max_words` words."""
    if len(text.split()) <= max_words:
        return [text]
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    parameters = PunktParameters()
    parameters.abbrev_types = set(ABBREVIATIONS)
    sentences = PunktSentenceTokenizer(parameters).tokenize(text)
    return [sentence.strip() for sentence in sentences if sentence.strip()]


# --------------------------------------------------------------------------------
# Coding sheets
# --------------------------------------------------------------------------------

CODE_COLUMNS = ["code_1", "code_2", "code_3"]
SHEET_COLUMNS = ["conversation_id", "excerpt_id", "position", "speaker", "text"]
NO_CODE = "no code"
SUGGESTED_CODER = "suggested (keywords)"
CODING_COLUMNS = ["conversation_id", "excerpt_id", "coder", "code", "is_suggestion"]
RECONCILED_SHEET = "reconciled.xlsx"


def write_coding_sheet(
    excerpts: pd.DataFrame,
    codebook,
    target: Path,
    *,
    include_interviewer: bool = False,
) -> Path:
    """Write a blank coding sheet: one row per excerpt, code columns with drop-downs.

    Parameters
    ----------
    excerpts : DataFrame
        From :func:`split_excerpts`.
    codebook : Codebook
        Its codable ids (and ``no code``) fill the drop-down lists.
    target : Path
        The workbook, e.g. ``coding/<month>/<coder>.xlsx`` for each coder.
    include_interviewer : bool
        Keep the interviewer's lines (default: only excerpts to code).

    Returns
    -------
    Path
        `target`, with columns ``conversation_id``, ``excerpt_id``, ``position``,
        ``speaker``, ``text``, ``code_1``, ``code_2``, ``code_3``.

    Notes
    -----
    Every coder gets the same blank sheet, so coders code blind to each other
    and to keyword suggestions. Choose ``no code`` for an excerpt where nothing
    applies; see :func:`read_coding_sheet` for how blanks are read.
    """
    rows = (
        excerpts
        if include_interviewer
        else excerpts[excerpts["speaker"] != "interviewer"]
    )
    sheet = rows[SHEET_COLUMNS].copy()
    for column in CODE_COLUMNS:
        sheet[column] = None
    choices = [*codebook.ids(codable_only=True), NO_CODE]
    widths = {"conversation_id": 14, "excerpt_id": 16, "text": 80}
    widths |= dict.fromkeys(CODE_COLUMNS, 18)
    return save_xlsx(
        sheet,
        Path(target),
        sheet="coding",
        dropdowns=dict.fromkeys(CODE_COLUMNS, choices),
        column_widths=widths,
    )


def read_coding_sheet(
    path: Path,
    codebook,
    *,
    coder: str | None = None,
    excerpts: pd.DataFrame | None = None,
    redacted: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Read one coder's filled-in coding sheet.

    Parameters
    ----------
    path : Path
        The XLSX (first sheet is read).
    codebook : Codebook
        Codes must be its codable ids (any case) or ``no code``.
    coder : str, optional
        The coder's name; the file name without extension when omitted.
    excerpts : DataFrame, optional
        The month's excerpts (:func:`split_excerpts`). When given, every coded
        row's ``excerpt_id`` must be one of them and its ``text`` must still read
        as the excerpt does.
    redacted : DataFrame, optional
        The same excerpts with contact details and names redacted
        (:func:`helpers.language.redact_excerpts`), as the step's blank coding
        sheet shows them: with `excerpts`, a row's text may read either way.

    Returns
    -------
    DataFrame
        Long format, one row per excerpt and code: ``conversation_id``,
        ``excerpt_id``, ``coder``, ``code`` (``no code`` for an excerpt coded
        with nothing), ``is_suggestion`` (False).

    Raises
    ------
    HeardInputError
        A missing or renamed column, a code not in the codebook, a group code
        that is not codable, ``no code`` beside a code, a repeated excerpt id,
        and (with `excerpts`) an excerpt id the notes lack or a text that no
        longer matches its excerpt; each names the file, row and column.

    Notes
    -----
    A blank row above the coder's last filled-in row is an excerpt coded with
    nothing (``no code``). Blank rows after it are excerpts the coder has not
    reached: they are left out (missing, not "no code") with a warning, so an
    unfinished sheet does not inflate agreement. Blank rows whose ``speaker`` is
    ``interviewer`` are context, not units, and are left out too; an
    interviewer line a coder did code is kept. Excerpt ids follow position, so
    a note edited after its sheets went out moves later ids onto other words;
    passing `excerpts` stops the read there instead of attaching codes to them.
    """
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise HeardInputError(
            path,
            expected="an Excel workbook (.xlsx)",
            found="an empty file" if path.stat().st_size == 0 else "another format",
            fix="save the coder's sheet from Excel or LibreOffice as .xlsx",
        )
    with open_raw(path) as handle:
        sheet = pd.read_excel(handle, sheet_name=0, dtype=str)
    sheet.columns = [str(column).strip().lower() for column in sheet.columns]
    coded = select_coded_rows(sheet, codebook, path)

    # One row per excerpt and code, blanks above the last coded row as "no code".
    rows, seen = [], {}
    texts = None if excerpts is None else collect_sheet_texts(excerpts, redacted)
    for index, codes in coded:
        record = sheet.iloc[index]
        excerpt_id = check_excerpt_id(record, path, index + 2, seen)
        if texts is not None:
            check_sheet_text(record, path, index + 2, texts)
        for code in codes or [NO_CODE]:
            rows.append([str(record["conversation_id"]).strip(), excerpt_id, code])
    frame = pd.DataFrame(rows, columns=CODING_COLUMNS[:2] + ["code"])
    frame.insert(2, "coder", coder or path.stem)
    frame["is_suggestion"] = False
    log.info("read %d codings of %d excerpts from %s", len(frame), len(seen), path)
    return frame.drop_duplicates(ignore_index=True)


def select_coded_rows(sheet: pd.DataFrame, codebook, path: Path) -> list[tuple]:
    """Return ``(row index, codes)`` for the sheet's units up to the last coded row.

    Every code cell is checked against the codebook. A blank interviewer line is
    context, not a unit, and is skipped; blank rows after the last coded row are
    not yet coded and are left out with a warning; a blank row above it gets
    no codes (read as ``no code``).
    """
    code_columns = check_sheet_columns(sheet, path)
    lookup = {code_id.casefold(): code_id for code_id in codebook.ids()}
    lookup[NO_CODE] = NO_CODE

    # Read each row's codes; drop blank interviewer lines.
    speakers = sheet.get("speaker", pd.Series("", index=sheet.index)).fillna("")
    is_context = speakers.str.strip().str.lower().eq("interviewer").to_numpy()
    coded = [
        (index, read_sheet_row(row, code_columns, lookup, codebook, path, index + 2))
        for index, row in enumerate(sheet.to_dict("records"))
    ]
    coded = [(index, codes) for index, codes in coded if codes or not is_context[index]]

    # Cut the rows the coder has not reached.
    filled = [position for position, (_, codes) in enumerate(coded) if codes]
    last = filled[-1] if filled else -1
    n_blank = len(coded) - 1 - last
    if n_blank:
        log.warning(
            "%s: %s after the last coded row read as not yet coded",
            path.name,
            "1 blank row" if n_blank == 1 else f"{n_blank} blank rows",
        )
    return coded[: last + 1]


def check_sheet_columns(sheet: pd.DataFrame, path: Path) -> list[str]:
    """Return the sheet's code columns (``code_1``, ``code_2``, …).

    Raises
    ------
    HeardInputError
        When ``conversation_id``, ``excerpt_id`` or ``code_1`` is missing, or a
        column looks like a renamed code column (``Code 2``, ``code2``).
    """
    code_columns = [c for c in sheet.columns if re.fullmatch(r"code_\d+", c)]
    renamed = [
        c for c in sheet.columns if c.startswith("code") and c not in code_columns
    ]
    for column in ("conversation_id", "excerpt_id", "code_1", *renamed):
        if column not in sheet.columns or column in renamed:
            raise HeardInputError(
                path,
                row=1,
                column=column,
                expected=f"a column named {column}"
                if column not in renamed
                else "code columns named code_1, code_2, code_3",
                found="columns " + ", ".join(map(str, sheet.columns)),
                fix="keep the header row as Heard wrote it (conversation_id, "
                "excerpt_id, position, speaker, text, code_1, code_2, code_3)",
            )
    return code_columns


def read_sheet_row(row: dict, code_columns, lookup: dict, codebook, path, line) -> list:
    """Return the codebook ids in one sheet row, in column order, without repeats."""
    codes = []
    for column in code_columns:
        value = row.get(column)
        if value is None or pd.isna(value) or not str(value).strip():
            continue
        text = str(value).strip().lstrip("'").strip()
        code = lookup.get(text.casefold()) or lookup.get(text.split()[0].casefold())
        if code is None or (code != NO_CODE and not codebook[code].is_codable):
            raise HeardInputError(
                path,
                row=line,
                column=column,
                expected="a codable id from the codebook's list, or 'no code'",
                found=text,
                fix="pick from the drop-down, or add the code to codebook.yml",
            )
        if code not in codes:
            codes.append(code)
    if NO_CODE in codes and len(codes) > 1:
        raise HeardInputError(
            path,
            row=line,
            column=code_columns[0],
            expected="either codes or 'no code'",
            found=", ".join(codes),
            fix="remove 'no code' or the other codes",
        )
    return codes


def check_excerpt_id(record, path: Path, line: int, seen: dict) -> str:
    """Return the row's excerpt id; raise when blank or repeated."""
    value = record["excerpt_id"]
    excerpt_id = "" if value is None or pd.isna(value) else str(value).strip()
    if not excerpt_id or excerpt_id in seen:
        raise HeardInputError(
            path,
            row=line,
            column="excerpt_id",
            expected="each excerpt's id once",
            found=f"{excerpt_id} (also row {seen[excerpt_id]})"
            if excerpt_id
            else "nothing",
            fix="restore the sheet's excerpt_id column as Heard wrote it",
        )
    seen[excerpt_id] = line
    return excerpt_id


def collect_sheet_texts(
    excerpts: pd.DataFrame, redacted: pd.DataFrame | None
) -> dict[str, tuple[str, ...]]:
    """Return each excerpt id's texts a sheet row may show: raw, then redacted."""
    texts = {
        excerpt_id: (text,)
        for excerpt_id, text in zip(
            excerpts["excerpt_id"], excerpts["text"], strict=True
        )
    }
    if redacted is not None:
        pairs = zip(redacted["excerpt_id"], redacted["text"], strict=True)
        for excerpt_id, text in pairs:
            if excerpt_id in texts:
                texts[excerpt_id] += (text,)
    return texts


def check_sheet_text(record, path: Path, line: int, texts: dict) -> None:
    """Raise when a sheet row's excerpt is not in the notes or its text moved.

    `texts` maps each excerpt id to the texts its row may show (the raw text,
    and the redacted one the step's blank sheet carries, which the error
    shows when there is one). Texts are compared with whitespace collapsed and
    the apostrophe that formula neutralising adds removed; a blank text cell is
    not checked.
    """
    excerpt_id = str(record["excerpt_id"]).strip()
    if excerpt_id not in texts:
        raise HeardInputError(
            path,
            row=line,
            column="excerpt_id",
            expected="an excerpt of this month's conversation notes",
            found=excerpt_id,
            fix="the sheet is from another month or the notes lost a line since "
            "it was written: write a fresh sheet and copy the codes across",
        )
    value = record.get("text")
    if value is None or pd.isna(value) or not str(value).strip():
        return
    accepted = {flatten_text(text) for text in texts[excerpt_id]}
    written = flatten_text(str(value))
    if not accepted & {written, written.removeprefix("'")}:
        shown = texts[excerpt_id][-1]
        raise HeardInputError(
            path,
            row=line,
            column="text",
            expected=f"the text of {excerpt_id} in the notes: {shown!r}",
            found=str(value),
            fix="the notes changed after this sheet was written, so its excerpt "
            "ids point at other words: restore the note, or write a fresh sheet "
            "and copy the codes across",
        )


def flatten_text(text: str) -> str:
    """Return `text` with runs of whitespace as single spaces, ends stripped."""
    return " ".join(text.split())


def read_coding_sheets(
    folder: Path,
    codebook,
    *,
    excerpts: pd.DataFrame | None = None,
    redacted: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Read every coder's sheet in `folder` (``<coder>.xlsx``; the reconciliation
    sheet and Office lock files skipped); columns, `excerpts` and `redacted` as
    :func:`read_coding_sheet`."""
    folder = Path(folder)
    paths = [
        path
        for path in sorted(folder.glob("*.xlsx"))
        if path.name != RECONCILED_SHEET and not path.name.startswith(("~$", "."))
    ]
    if not paths:
        raise HeardInputError(
            folder,
            expected="one coding sheet per coder (<coder>.xlsx)",
            found="no .xlsx files",
            fix="copy each coder's filled-in sheet into this folder",
        )
    codings = pd.concat(
        [
            read_coding_sheet(p, codebook, excerpts=excerpts, redacted=redacted)
            for p in paths
        ],
        ignore_index=True,
    )
    log.info("read %d coders' sheets from %s", len(paths), folder)
    return codings


def load_codings(
    study,
    month: str,
    codebook,
    *,
    excerpts: pd.DataFrame | None = None,
    redacted: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Read the month's coding sheets from ``coding/<month>/`` of the raw study;
    `excerpts` and `redacted` as for :func:`read_coding_sheet`."""
    folder = study.raw("coding", month)
    return read_coding_sheets(folder, codebook, excerpts=excerpts, redacted=redacted)


def suggest_codes(excerpts: pd.DataFrame, codebook) -> pd.DataFrame:
    """Suggest codes from the codebook's keyword rules, marked as suggestions.

    Parameters
    ----------
    excerpts : DataFrame
        From :func:`split_excerpts`; the interviewer's lines are skipped.
    codebook : Codebook
        Each codable code's ``keywords`` (words or phrases, whole words, any case).

    Returns
    -------
    DataFrame
        ``conversation_id``, ``excerpt_id``, ``coder`` (``suggested (keywords)``),
        ``code``, ``is_suggestion`` (True); one row per excerpt and matching code.

    Notes
    -----
    Suggestions are a first pass for people to check, never a coder: the
    agreement and consensus functions drop rows with ``is_suggestion``.
    """
    patterns = {
        code: re.compile(
            r"\b(?:" + "|".join(re.escape(word) for word in words) + r")\b", re.I
        )
        for code, words in codebook.keyword_rules().items()
    }
    rows = [
        [excerpt.conversation_id, excerpt.excerpt_id, SUGGESTED_CODER, code, True]
        for excerpt in excerpts[excerpts["speaker"] != "interviewer"].itertuples()
        for code, pattern in patterns.items()
        if pattern.search(str(excerpt.text))
    ]
    return pd.DataFrame(rows, columns=CODING_COLUMNS)


# --------------------------------------------------------------------------------
# Agreement
# --------------------------------------------------------------------------------

OVERALL = "overall"
UNDEFINED = "undefined (no variation)"
# Below this many applications (all coders together) a code's bootstrap interval
# rests on a handful of units and comes out far too narrow.
RARE_APPLICATIONS = 10
AGREEMENT_COLUMNS = [
    "code",
    "n_units",
    "n_coders",
    "n_applied",
    "percent_agreement",
    "percent_agreement_ci_low",
    "percent_agreement_ci_high",
    "kappa",
    "kappa_ci_low",
    "kappa_ci_high",
    "alpha",
    "alpha_ci_low",
    "alpha_ci_high",
    "status",
]
CI_COLUMNS = [
    "percent_agreement_ci_low",
    "percent_agreement_ci_high",
    "kappa_ci_low",
    "kappa_ci_high",
    "alpha_ci_low",
    "alpha_ci_high",
]


def human_codings(codings: pd.DataFrame) -> pd.DataFrame:
    """Return the codings made by people: suggestions dropped."""
    if "is_suggestion" not in codings.columns:
        return codings
    return codings[~codings["is_suggestion"].fillna(False).astype(bool)]


def build_presence(
    codings: pd.DataFrame, *, codes: list[str] | None = None, unit: str = "excerpt"
) -> tuple:
    """Return, for each code, which coder applied it to which unit.

    Parameters
    ----------
    codings : DataFrame
        Long format from :func:`read_coding_sheet`; suggestions are dropped.
    codes : list of str, optional
        The codes to tabulate; every code used (but ``no code``) when omitted.
    unit : {"excerpt", "conversation"}
        The unit compared. At conversation level a coder applied a code when
        any of their excerpts in it carries the code.

    Returns
    -------
    tuple
        ``(presence, codes, coders, units)``; ``presence`` has shape
        (codes, coders, units): 1 applied, 0 coded without it, NaN not coded.
    """
    if unit not in ("excerpt", "conversation"):
        raise ValueError(f"unit must be 'excerpt' or 'conversation', got {unit!r}")
    key = "excerpt_id" if unit == "excerpt" else "conversation_id"
    human = human_codings(codings)
    coders = sorted(human["coder"].unique())
    units = sorted(human[key].unique())
    if codes is None:
        codes = sorted(set(human["code"]) - {NO_CODE})

    # Every unit a coder coded starts at 0 for every code; applied codes become 1.
    presence = np.full((len(codes), len(coders), len(units)), np.nan)
    coder_index = {coder: i for i, coder in enumerate(coders)}
    unit_index = {value: i for i, value in enumerate(units)}
    code_index = {code: i for i, code in enumerate(codes)}
    rows = human["coder"].map(coder_index).to_numpy()
    columns = human[key].map(unit_index).to_numpy()
    presence[:, rows, columns] = 0.0
    applied = human["code"].isin(code_index)
    presence[
        human.loc[applied, "code"].map(code_index).to_numpy(dtype=int),
        rows[applied.to_numpy()],
        columns[applied.to_numpy()],
    ] = 1.0
    return presence, list(codes), coders, units


def percent_agreement(data: np.ndarray) -> float:
    """Return the share of agreeing coder pairs, averaged over units.

    Parameters
    ----------
    data : ndarray
        Coders × units, categories as numbers, NaN where a coder did not code.

    Returns
    -------
    float
        With two coders, the share of units both coded where they agree. Units
        coded by fewer than two coders are skipped; NaN when none is left.
    """
    agreeing, pairs = _pair_counts(data)
    usable = pairs > 0
    if not usable.any():
        return float("nan")
    return float(np.mean(agreeing[usable] / pairs[usable]))


def _pair_counts(data: np.ndarray) -> tuple:
    """Return agreeing coder pairs and all coder pairs per unit (coders on axis -2)."""
    values = np.unique(data[~np.isnan(data)])
    counts = (
        np.stack([(data == value).sum(axis=-2) for value in values])
        if len(values)
        else np.zeros((1, *data.shape[:-2], data.shape[-1]))
    )
    coded = counts.sum(axis=0)
    return (counts * (counts - 1)).sum(axis=0) / 2, coded * (coded - 1) / 2


def unit_agreement_shares(data: np.ndarray) -> tuple:
    """Return each unit's share of agreeing coder pairs, and whether it has a pair.

    Parameters
    ----------
    data : ndarray
        Coders × units, or codes × coders × units (summed over codes, so a unit
        carries all its codes), NaN where a coder did not code.

    Returns
    -------
    tuple of ndarray
        ``(shares, pairable)``, one value per unit: the summed shares of
        agreeing pairs (0 for a unit without a pair) and the number of
        judgements with a pair. Percent agreement is ``shares.sum() /
        pairable.sum()``, as :func:`percent_agreement` computes it.
    """
    agreeing, pairs = _pair_counts(data)
    pairable = pairs > 0
    shares = np.divide(
        agreeing, pairs, out=np.zeros_like(agreeing, dtype=float), where=pairable
    )
    if data.ndim == 3:
        return shares.sum(axis=0), pairable.sum(axis=0).astype(float)
    return shares, pairable.astype(float)


def has_variation(data: np.ndarray) -> bool:
    """True when units coded by two or more coders hold more than one value."""
    pairable = data[:, (~np.isnan(data)).sum(axis=0) >= 2]
    return len(np.unique(pairable[~np.isnan(pairable)])) > 1


def cohen_kappa(data: np.ndarray) -> float:
    """Return Cohen's kappa for two coders (rows of `data`), NaN when undefined.

    Parameters
    ----------
    data : ndarray
        2 × units, categories as numbers, NaN where a coder did not code.

    Returns
    -------
    float
        Kappa from statsmodels' ``cohens_kappa`` on the coders' cross-table.

    Raises
    ------
    ValueError
        When `data` does not have exactly two rows.

    Notes
    -----
    Units one coder skipped are left out. Kappa is undefined (NaN, never 0 or 1)
    when both coders used a single, identical value throughout: chance
    agreement is then 1 and kappa is 0/0.
    """
    if data.shape[0] != 2:
        raise ValueError(f"Cohen's kappa needs exactly two coders, got {data.shape[0]}")
    from statsmodels.stats.inter_rater import cohens_kappa

    both = ~np.isnan(data).any(axis=0)
    if not both.any() or not has_variation(data[:, both]):
        return float("nan")

    # The coders' cross-table over the categories either of them used.
    categories, index = np.unique(data[:, both], return_inverse=True)
    index = index.reshape(2, -1)
    size = len(categories)
    table = np.bincount(index[0] * size + index[1], minlength=size * size)
    return float(cohens_kappa(table.reshape(size, size), return_results=False))


def nominal_alpha(data: np.ndarray) -> float:
    """Return Krippendorff's alpha for nominal data, NaN when undefined.

    Parameters
    ----------
    data : ndarray
        Coders × units, NaN where a coder did not code (skipped, as Krippendorff
        prescribes). Any number of coders.

    Returns
    -------
    float
        Nominal alpha, or NaN when undefined.

    Notes
    -----
    Calls the ``krippendorff`` package. Alpha is undefined when the pairable
    values hold a single category (expected disagreement 0).
    """
    import krippendorff

    if not has_variation(data):
        return float("nan")
    return float(
        krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    )


def unit_coincidences(data: np.ndarray) -> np.ndarray:
    """Return each unit's contribution to Krippendorff's coincidence matrix.

    Parameters
    ----------
    data : ndarray
        Coders × units, or codes × coders × units (summed over codes, so a unit
        carries all its codes), NaN where a coder did not code.

    Returns
    -------
    ndarray
        Units × categories × categories; units coded by fewer than two coders
        contribute nothing. Summing over units gives the coincidence matrix.
    """
    values = np.unique(data[~np.isnan(data)])
    counts = np.stack([(data == v).sum(axis=-2) for v in values], axis=-1).astype(float)
    coded = counts.sum(axis=-1)[..., None, None]
    pairs = counts[..., :, None] * counts[..., None, :]
    pairs -= np.eye(len(values)) * counts[..., None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        contribution = np.where(coded >= 2, pairs / (coded - 1), 0.0)
    return contribution.sum(axis=0) if data.ndim == 3 else contribution


def alpha_from_coincidences(coincidences: np.ndarray) -> np.ndarray:
    """Return nominal alpha from coincidence matrices (last two axes); NaN when
    the expected disagreement is zero."""
    totals = coincidences.sum(axis=-1)
    n = totals.sum(axis=-1)
    observed = coincidences.sum(axis=(-2, -1)) - np.trace(
        coincidences, axis1=-2, axis2=-1
    )
    expected = n**2 - (totals**2).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(expected > 0, 1 - (n - 1) * observed / expected, np.nan)


def unit_cross_tables(data: np.ndarray) -> np.ndarray:
    """Return each unit's contribution to two coders' cross-table.

    Parameters
    ----------
    data : ndarray
        2 × units, or codes × 2 × units (summed over codes).

    Returns
    -------
    ndarray
        Units × categories × categories: 1 in the cell (first coder's value,
        second coder's value) of each unit both coded.
    """
    values = np.unique(data[~np.isnan(data)])
    size = len(values)
    both = ~np.isnan(data).any(axis=-2)
    first = np.searchsorted(values, np.nan_to_num(data[..., 0, :]))
    second = np.searchsorted(values, np.nan_to_num(data[..., 1, :]))
    cells = np.eye(size * size)[np.minimum(first * size + second, size * size - 1)]
    tables = (cells * both[..., None]).reshape(*both.shape, size, size)
    return tables.sum(axis=0) if data.ndim == 3 else tables


def kappa_from_tables(tables: np.ndarray) -> np.ndarray:
    """Return Cohen's kappa from cross-tables (last two axes); NaN when chance
    agreement is 1 (no variation) or the table is empty."""
    n = tables.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = np.trace(tables, axis1=-2, axis2=-1) / n
        chance = (tables.sum(axis=-1) * tables.sum(axis=-2)).sum(axis=-1) / n**2
        return np.where(chance < 1 - 1e-12, (observed - chance) / (1 - chance), np.nan)


def bootstrap_intervals(
    data: np.ndarray, *, weights: np.ndarray, confidence: float = 0.95
) -> dict:
    """Return percentile bootstrap intervals for percent agreement, kappa and alpha.

    Parameters
    ----------
    data : ndarray
        Coders × units, or codes × coders × units (a resampled unit brings all
        its codes).
    weights : ndarray
        Replicates × units: how many times each unit was drawn in each
        replicate (see :func:`draw_bootstrap_weights`).
    confidence : float
        The intervals' level.

    Returns
    -------
    dict
        ``percent_agreement_ci_low``, ``percent_agreement_ci_high``,
        ``kappa_ci_low``, ``kappa_ci_high`` (NaN unless two coders),
        ``alpha_ci_low``, ``alpha_ci_high``. An interval is NaN when fewer than
        half the replicates give a defined value (a resample without variation
        leaves kappa and alpha undefined and is dropped; percent agreement is
        defined in every resample that holds a unit two coders coded).

    Notes
    -----
    Each replicate's statistic is computed from the replicate's weighted sum of
    per-unit coincidences (alpha), cross-tables (kappa) or shares of agreeing
    pairs (percent agreement), which is what the ``krippendorff`` package,
    statsmodels and :func:`percent_agreement` compute on the resampled data
    (the tests check they agree); calling them 1,000 times per code took
    seconds per code.
    """
    tail = (1 - confidence) / 2 * 100
    shares, pairable = unit_agreement_shares(data)
    with np.errstate(invalid="ignore", divide="ignore"):
        percent = (weights @ shares) / (weights @ pairable)
    replicates = {
        "percent_agreement": percent,
        "alpha": alpha_from_coincidences(
            np.tensordot(weights, unit_coincidences(data), axes=(1, 0))
        ),
    }
    if data.shape[-2] == 2:
        replicates["kappa"] = kappa_from_tables(
            np.tensordot(weights, unit_cross_tables(data), axes=(1, 0))
        )
    bounds = {}
    for name in ("percent_agreement", "kappa", "alpha"):
        values = replicates.get(name, np.array([]))
        values = values[~np.isnan(values)]
        low = high = float("nan")
        if len(weights) and len(values) >= len(weights) / 2:
            low, high = np.percentile(values, [tail, 100 - tail])
        bounds[f"{name}_ci_low"], bounds[f"{name}_ci_high"] = float(low), float(high)
    return bounds


def agreement_table(
    codings: pd.DataFrame,
    *,
    codebook=None,
    unit: str = "excerpt",
    n_boot: int = 1000,
    seed: int = 2026,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Return agreement between coders per code and overall.

    Parameters
    ----------
    codings : DataFrame
        Long format from :func:`read_coding_sheets`; suggestions are ignored.
    codebook : Codebook, optional
        When given, every codable code gets a row, used or not, in codebook order.
    unit : {"excerpt", "conversation"}
        The unit actually coded (excerpt) or the conversation.
    n_boot : int
        Bootstrap replicates over units; 0 for no intervals.
    seed : int
        Seeds the bootstrap, so intervals repeat exactly.
    confidence : float
        The intervals' level.

    Returns
    -------
    DataFrame
        One row per code, then a row ``overall``: ``code``, ``n_units`` (units
        coded by at least two coders), ``n_coders``, ``n_applied`` (times the
        code was applied), ``percent_agreement``, ``percent_agreement_ci_low``,
        ``percent_agreement_ci_high``, ``kappa``, ``kappa_ci_low``,
        ``kappa_ci_high``, ``alpha``, ``alpha_ci_low``, ``alpha_ci_high``,
        ``status``.

    Notes
    -----
    Each code is a yes/no judgement per unit. Cohen's kappa (statsmodels) needs
    exactly two coders; Krippendorff's alpha (the ``krippendorff`` package,
    nominal) takes any number and skips units a coder did not code. A code
    with no variation (nobody used it, or everybody used it everywhere) has
    undefined kappa and alpha: they are NaN with status ``undefined (no
    variation)`` and the raw agreement is still shown. The overall row pools
    the yes/no judgements of every code used at least once (codes nobody used
    would inflate it). Intervals resample units with replacement (percentile
    method) in whole conversations: excerpts of one conversation share a
    customer and a coder's reading, so resampling them one by one would give
    intervals too narrow. Krippendorff's own bootstrap resamples pairable
    values instead. Codes one coder alone used,
    or applied fewer than ``RARE_APPLICATIONS`` times, get a status that says
    their interval cannot be read (:func:`describe_agreement`).
    """
    codes = codebook.ids(codable_only=True) if codebook is not None else None
    presence, codes, coders, units = build_presence(codings, codes=codes, unit=unit)
    if len(coders) < 2:
        log.warning("agreement needs two or more coders; found %d", len(coders))
    clusters = unit_clusters(codings, units, unit=unit)
    weights = draw_bootstrap_weights(clusters, n_boot=n_boot, seed=seed)

    rows = [
        summarise_agreement(presence[i], weights=weights, confidence=confidence)
        | {"code": code}
        for i, code in enumerate(codes)
    ]
    used = presence[np.nansum(presence, axis=(1, 2)) > 0]
    rows.append(
        summarise_agreement(used, weights=weights, confidence=confidence)
        | {"code": OVERALL}
    )
    table = pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)
    undefined = table.loc[table["status"] == UNDEFINED, "code"].tolist()
    if undefined:
        log.warning(
            "kappa and alpha undefined (no variation) for %s", ", ".join(undefined)
        )
    log.info("agreement of %d coders on %d %ss", len(coders), len(units), unit)
    return table


def unit_clusters(codings: pd.DataFrame, units: list, *, unit: str) -> np.ndarray:
    """Return, for each unit, the index of the conversation it belongs to.

    At the conversation level every unit is its own cluster.
    """
    if unit == "conversation":
        return np.arange(len(units))
    conversation_of = codings.drop_duplicates("excerpt_id").set_index("excerpt_id")[
        "conversation_id"
    ]
    codes, _ = pd.factorize(conversation_of.reindex(units))
    return codes


def draw_bootstrap_weights(
    clusters: np.ndarray, *, n_boot: int, seed: int
) -> np.ndarray:
    """Return replicates × units weights from resampling whole clusters.

    Parameters
    ----------
    clusters : ndarray
        Each unit's cluster index (0 .. k-1).
    n_boot : int
        Replicates.
    seed : int
        Seeds the draw.

    Returns
    -------
    ndarray
        Shape (n_boot, units): how often the unit's cluster was drawn when k
        clusters are drawn with replacement.
    """
    n_clusters = int(clusters.max()) + 1 if len(clusters) else 0
    draws = np.random.default_rng(seed).integers(0, n_clusters, (n_boot, n_clusters))
    counts = np.zeros((n_boot, n_clusters))
    np.add.at(counts, (np.arange(n_boot)[:, None], draws), 1.0)
    return counts[:, clusters]


def summarise_agreement(
    data: np.ndarray, *, weights: np.ndarray, confidence: float
) -> dict:
    """Return one row of :func:`agreement_table` for coders × units data, or
    codes × coders × units data pooled over codes."""
    flat = np.concatenate(list(data), axis=1) if data.ndim == 3 and len(data) else data
    if flat.size == 0:
        flat = np.full((data.shape[-2], 0), np.nan)
    n_coders = flat.shape[0]
    pairable = (~np.isnan(data)).sum(axis=-2) >= 2
    row = {
        "n_units": int(
            pairable.any(axis=0).sum() if data.ndim == 3 else pairable.sum()
        ),
        "n_coders": n_coders,
        "n_applied": int(np.nansum(flat)),
        "percent_agreement": percent_agreement(flat),
    }

    # Kappa for exactly two coders, alpha for any number; both NaN without variation.
    row["kappa"] = cohen_kappa(flat) if n_coders == 2 else float("nan")
    row["alpha"] = nominal_alpha(flat) if n_coders >= 2 else float("nan")
    row |= dict.fromkeys(CI_COLUMNS, np.nan)
    if n_coders >= 2 and row["n_units"] and len(weights):
        row |= bootstrap_intervals(data, weights=weights, confidence=confidence)

    row["status"] = describe_agreement(flat, n_units=row["n_units"])
    return row


def describe_agreement(data: np.ndarray, *, n_units: int) -> str:
    """Return the status of one agreement row: how far its numbers can be read.

    Parameters
    ----------
    data : ndarray
        Coders × units, 1 applied, 0 coded without it, NaN not coded.
    n_units : int
        Units coded by at least two coders.

    Returns
    -------
    str
        ``no unit coded by two coders``, ``undefined (no variation)``, ``used
        by one coder only`` (kappa is then 0 in every resample, so its interval
        is [0, 0] by arithmetic), ``rare (<n> applications): interval
        unreliable`` (fewer than ``RARE_APPLICATIONS``: resamples without the
        few applied units are undefined and dropped, leaving an interval far
        too narrow), else ``ok``; ``(kappa needs exactly two coders)`` is added
        when there are not two coders.
    """
    n_applied = int(np.nansum(data))
    if n_units == 0:
        return "no unit coded by two coders"
    if not has_variation(data):
        return UNDEFINED
    if (np.nansum(data, axis=1) > 0).sum() == 1:
        status = "used by one coder only: kappa is 0 by construction"
    elif n_applied < RARE_APPLICATIONS:
        status = f"rare ({n_applied} applications): interval unreliable"
    else:
        status = "ok"
    return (
        status if data.shape[0] == 2 else f"{status} (kappa needs exactly two coders)"
    )


# --------------------------------------------------------------------------------
# Disagreements and consensus
# --------------------------------------------------------------------------------

DECISIONS = ["keep", "drop"]
QUEUE_COLUMNS = [
    "conversation_id",
    "excerpt_id",
    "code",
    "n_coders",
    "n_applied",
    "applied_by",
    "not_applied_by",
    "codings",
]
CONSENSUS_COLUMNS = [
    "conversation_id",
    "excerpt_id",
    "code",
    "basis",
    "n_coders",
    "n_applied",
]


def tally_votes(codings: pd.DataFrame) -> pd.DataFrame:
    """Return, per excerpt and code any coder applied, who applied it.

    Returns
    -------
    DataFrame
        ``conversation_id``, ``excerpt_id``, ``code``, ``n_coders`` (coders who
        coded the excerpt), ``n_applied``, ``applied_by``, ``not_applied_by``
        (coders joined by ``, ``), ``codings`` (each coder's codes, e.g.
        ``ana: OBJ-PRICE | ben: no code``).
    """
    human = human_codings(codings)
    coders = human.groupby("excerpt_id")["coder"].agg(lambda c: sorted(set(c)))
    each = (
        human.groupby(["excerpt_id", "coder"])["code"]
        .agg(lambda codes: ", ".join(sorted(codes)))
        .reset_index()
    )
    each["text"] = each["coder"] + ": " + each["code"]
    described = each.groupby("excerpt_id")["text"].agg(" | ".join)

    votes = (
        human[human["code"] != NO_CODE]
        .groupby(["conversation_id", "excerpt_id", "code"])["coder"]
        .agg(lambda c: sorted(set(c)))
        .rename("applied")
        .reset_index()
    )
    everyone = votes["excerpt_id"].map(coders)
    votes["n_coders"] = everyone.map(len).astype("int64")
    votes["n_applied"] = votes["applied"].map(len).astype("int64")
    votes["applied_by"] = votes["applied"].map(", ".join)
    votes["not_applied_by"] = [
        ", ".join(c for c in all_ if c not in applied)
        for all_, applied in zip(everyone, votes["applied"], strict=True)
    ]
    votes["codings"] = votes["excerpt_id"].map(described)
    return votes[QUEUE_COLUMNS]


def disagreement_queue(
    codings: pd.DataFrame,
    *,
    excerpts: pd.DataFrame | None = None,
    resolutions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Return the excerpt-and-code pairs coders disagree on, for reconciliation.

    Parameters
    ----------
    codings : DataFrame
        Long format from :func:`read_coding_sheets`; suggestions are ignored.
    excerpts : DataFrame, optional
        From :func:`split_excerpts`, to show each excerpt's text.
    resolutions : DataFrame, optional
        From :func:`read_resolutions`: fills ``decision`` and ``note``.

    Returns
    -------
    DataFrame
        One row per excerpt and code some but not all coders applied:
        ``conversation_id``, ``excerpt_id``, ``code``, ``n_coders``,
        ``n_applied``, ``applied_by``, ``not_applied_by``, ``codings`` (both
        codings side by side), ``text`` (when `excerpts` is given), ``decision``
        (``keep``, ``drop`` or empty when unresolved), ``note``.
    """
    votes = tally_votes(codings)
    queue = votes[votes["n_applied"] < votes["n_coders"]].reset_index(drop=True)
    if excerpts is not None:
        queue["text"] = queue["excerpt_id"].map(
            excerpts.set_index("excerpt_id")["text"]
        )
    queue["decision"], queue["note"] = None, None
    if resolutions is not None and len(resolutions):
        keyed = resolutions.set_index(["excerpt_id", "code"])
        index = pd.MultiIndex.from_frame(queue[["excerpt_id", "code"]])
        queue["decision"] = keyed["decision"].reindex(index).to_numpy()
        queue["note"] = keyed["note"].reindex(index).to_numpy()
    log.info(
        "%d disagreements, %d resolved", len(queue), queue["decision"].notna().sum()
    )
    return queue


def write_reconciliation_sheet(queue: pd.DataFrame, target: Path) -> Path:
    """Write the disagreement queue as an XLSX with a keep/drop drop-down in
    ``decision``; the coders fill it in together and save it as
    ``coding/<month>/reconciled.xlsx``."""
    sheet = queue.copy()
    for column in ("decision", "note"):
        if column not in sheet.columns:
            sheet[column] = None
    widths = {"codings": 40, "text": 60, "note": 40}
    return save_xlsx(
        sheet,
        Path(target),
        sheet="reconcile",
        dropdowns={"decision": DECISIONS},
        column_widths={k: v for k, v in widths.items() if k in sheet.columns},
    )


def read_resolutions(path: Path, codebook=None) -> pd.DataFrame:
    """Read a filled-in reconciliation sheet.

    Returns
    -------
    DataFrame
        ``excerpt_id``, ``code``, ``decision`` (``keep`` or ``drop``), ``note``;
        rows left without a decision are dropped (still unresolved).

    Raises
    ------
    HeardInputError
        A missing column, a decision other than keep/drop, a code not in
        `codebook` (when given); naming the file, row and column.
    """
    path = Path(path)
    with open_raw(path) as handle:
        sheet = pd.read_excel(handle, sheet_name=0, dtype=str)
    sheet.columns = [str(column).strip().lower() for column in sheet.columns]
    for column in ("excerpt_id", "code", "decision"):
        if column not in sheet.columns:
            raise HeardInputError(
                path,
                row=1,
                column=column,
                expected=f"a column named {column}",
                found="columns " + ", ".join(sheet.columns),
                fix="keep the header row of the reconciliation sheet Heard wrote",
            )
    if "note" not in sheet.columns:
        sheet["note"] = None
    decisions = sheet["decision"].fillna("").str.strip().str.lower()
    for index, (decision, code) in enumerate(
        zip(decisions, sheet["code"], strict=True)
    ):
        bad_code = codebook is not None and str(code).strip() not in codebook
        if decision not in ("", *DECISIONS) or (decision and bad_code):
            raise HeardInputError(
                path,
                row=index + 2,
                column="code" if decision in DECISIONS else "decision",
                expected="keep or drop for a code in the codebook",
                found=code if decision in DECISIONS else decision,
                fix="choose keep or drop; leave it blank while unresolved",
            )
    resolved = sheet.assign(decision=decisions)[decisions != ""]
    resolved = resolved.assign(
        excerpt_id=resolved["excerpt_id"].str.strip(), code=resolved["code"].str.strip()
    )
    return resolved[["excerpt_id", "code", "decision", "note"]].reset_index(drop=True)


def load_resolutions(study, month: str, codebook=None) -> pd.DataFrame | None:
    """Return the month's ``coding/<month>/reconciled.xlsx`` if present, else None."""
    path = study.raw("coding", month, RECONCILED_SHEET)
    return read_resolutions(path, codebook) if path.exists() else None


def is_kept_by_majority(n_applied: pd.Series, n_coders: pd.Series) -> pd.Series:
    """Return whether more than half of an excerpt's coders applied a code: the
    rule that keeps a disagreement nobody has reconciled (two coders: never)."""
    return 2 * n_applied > n_coders


def build_consensus(
    codings: pd.DataFrame, *, resolutions: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Return the consensus coding the analysis uses.

    Parameters
    ----------
    codings : DataFrame
        Long format from :func:`read_coding_sheets`; suggestions are ignored.
    resolutions : DataFrame, optional
        From :func:`read_resolutions` (``reconciled.xlsx``).

    Returns
    -------
    DataFrame
        One row per excerpt and consensus code: ``conversation_id``,
        ``excerpt_id``, ``code``, ``basis`` (``agreed``, ``resolved``,
        ``majority`` or ``single coder``), ``n_coders``, ``n_applied``.
        Excerpts with no consensus code have no row.

    Notes
    -----
    The rule, in order: a code every coder of the excerpt applied is kept
    (``agreed``; with one coder, ``single coder``). A disagreement resolved in
    the reconciliation sheet is kept or dropped as decided (``resolved``). An
    unresolved disagreement is kept only when more than half of the excerpt's
    coders applied it (``majority``): with two coders, never. Unresolved
    disagreements are counted in a warning; :func:`disagreement_queue` lists
    them.
    """
    votes = tally_votes(codings)
    decision = pd.Series(None, index=votes.index, dtype=object)
    if resolutions is not None and len(resolutions):
        keyed = resolutions.set_index(["excerpt_id", "code"])["decision"]
        index = pd.MultiIndex.from_frame(votes[["excerpt_id", "code"]])
        decision = pd.Series(keyed.reindex(index).to_numpy(), index=votes.index)

    # Agreed first, then decisions, then the majority rule for the rest.
    agreed = votes["n_applied"] == votes["n_coders"]
    resolved = ~agreed & decision.notna()
    majority = (
        ~agreed & ~resolved & is_kept_by_majority(votes["n_applied"], votes["n_coders"])
    )
    votes["basis"] = np.select(
        [agreed & (votes["n_coders"] == 1), agreed, resolved, majority],
        ["single coder", "agreed", "resolved", "majority"],
        default="",
    )
    keep = agreed | (resolved & (decision == "keep")) | majority
    n_open = int((~agreed & ~resolved).sum())
    if n_open:
        log.warning(
            "%d disagreements unresolved: %d kept by majority, %d left out",
            n_open,
            int(majority.sum()),
            n_open - int(majority.sum()),
        )
    consensus = votes.loc[keep, CONSENSUS_COLUMNS].reset_index(drop=True)
    log.info(
        "consensus: %d codes on %d excerpts",
        len(consensus),
        consensus["excerpt_id"].nunique(),
    )
    return consensus
