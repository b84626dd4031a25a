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
from pathlib import Path

import pandas as pd
import yaml

from helpers.errors import HeardInputError
from helpers.files import open_raw

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
    return frame.sort_values(["date", "conversation_id"], ignore_index=True)


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
    with open_raw(path) as handle:
        raw_text = handle.read().decode("utf-8-sig")
    raw_text = raw_text.replace("\r\n", "\n").replace("\r", "\n")

    # Front matter at the top, else a sidecar file for transcripts.
    meta, lines, body, body_start = split_front_matter(raw_text, path)
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
    if suffix == ".vtt":
        body = vtt_to_lines(body)
    elif suffix == ".srt":
        body = srt_to_lines(body)
    elif suffix == ".txt":
        body = txt_to_lines(body)
    fields = build_conversation_fields(meta, lines, meta_file, default_id=path.stem)
    fields["source_file"] = path.name
    fields["text"] = label_roles(
        body,
        interviewer=fields["interviewer"],
        is_transcript=is_transcript,
    )
    return [{"fields": fields, "lines": lines, "file": meta_file}]


def split_front_matter(text: str, path: Path) -> tuple:
    """Split YAML front matter from the body.

    Returns
    -------
    tuple
        ``(meta, lines, body, body_start)``: the mapping (None when the file has no
        front matter), each key's line in the file, the body and its first line.
    """
    if not text.startswith("---\n") and text.strip() != "---":
        return None, {}, text, 1
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
    body_start = 2 + block.count("\n") + 1
    return meta, lines, rest[closing.end() :].lstrip("\n"), body_start


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
        mark = getattr(error, "problem_mark", None)
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
    """Read a CSV with one conversation per row into records."""
    with open_raw(path) as handle:
        table = pd.read_csv(handle, dtype=str, keep_default_na=False)
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
                expected="a customer_key from the month's call list",
                found=fields["customer_key"],
                fix="copy the reference from the call list",
            )


# --------------------------------------------------------------------------------
# Transcripts: cues into "Name: text" lines
# --------------------------------------------------------------------------------


def vtt_to_lines(body: str) -> str:
    """Return a WebVTT transcript (Zoom or Teams) as ``Name: text`` lines."""
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
    if "Transcript" in (line.strip() for line in lines) and "Attendees" in lines[:5]:
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
    """True when a text transcript has Zoom or Otter speaker-and-time lines."""
    lines = body.split("\n")
    return any(
        ZOOM_TXT_HEADER.match(line) or OTTER_HEADER.match(line) for line in lines
    )


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
        text = label_roles(str(conversation.text), interviewer=interviewer or None)
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
    return excerpts


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
