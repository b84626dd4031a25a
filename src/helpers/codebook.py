"""The codebook: hierarchical codes in YAML, and the REFI-QDA ``.qdc`` exchange format.

A codebook lives in ``data/raw/<study>/codebook.yml``: a ``version`` and a tree of
codes, each with a stable ``id``, a ``name``, a ``definition``, ``use_when`` and
``not_when`` guidance, ``examples`` and optional ``keywords`` for suggested
first-pass coding. The same codebook moves to and from NVivo, ATLAS.ti, MAXQDA and
QualCoder as a REFI-QDA codebook (``urn:QDA-XML:codebook:1.0``).
"""

from __future__ import annotations

import logging
import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from helpers.errors import HeardInputError
from helpers.files import open_raw, save_text

log = logging.getLogger(__name__)

QDC_NAMESPACE = "urn:QDA-XML:codebook:1.0"
# Guids are uuid5 of the code id in this namespace, so they never change.
GUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:heard:codebook")
HEARD_MARKER = "[heard]"
ID_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
COLOR_PATTERN = re.compile(r"^#([0-9A-Fa-f]{6}|[0-9A-Fa-f]{3})$")
TABLE_COLUMNS = [
    "code",
    "name",
    "parent",
    "depth",
    "path",
    "is_codable",
    "definition",
    "use_when",
    "not_when",
    "examples",
    "keywords",
    "color",
]


@dataclass(frozen=True)
class Code:
    """One code: a stable id, a name and the guidance coders read."""

    id: str
    name: str
    definition: str = ""
    use_when: str = ""
    not_when: str = ""
    examples: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    parent: str | None = None
    color: str | None = None
    is_codable: bool = True


@dataclass(frozen=True)
class Codebook:
    """A codebook: codes in tree order (each parent before its children)."""

    codes: tuple[Code, ...]
    version: str | None = None
    sets: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {code.id: code for code in self.codes})

    def __getitem__(self, code_id: str) -> Code:
        return self._by_id[code_id]

    def __contains__(self, code_id: object) -> bool:
        return code_id in self._by_id

    def __len__(self) -> int:
        return len(self.codes)

    def ids(self, *, codable_only: bool = False) -> list[str]:
        """Return the code ids in tree order."""
        return [c.id for c in self.codes if c.is_codable or not codable_only]

    def children(self, code_id: str | None) -> list[str]:
        """Return the ids of the codes directly under `code_id` (None: the roots)."""
        return [c.id for c in self.codes if c.parent == code_id]

    def ancestors(self, code_id: str) -> list[str]:
        """Return the ids above `code_id`, the root first."""
        chain, parent = [], self[code_id].parent
        while parent is not None:
            chain.insert(0, parent)
            parent = self[parent].parent
        return chain

    def depth(self, code_id: str) -> int:
        """Return 0 for a root code, 1 for its children, and so on."""
        return len(self.ancestors(code_id))

    def branch(self, code_id: str) -> list[str]:
        """Return `code_id` and every code below it, in tree order."""
        return [
            c.id
            for c in self.codes
            if c.id == code_id or code_id in self.ancestors(c.id)
        ]

    def keyword_rules(self) -> dict[str, tuple[str, ...]]:
        """Return code id -> keywords for the codable codes that have keywords."""
        return {c.id: c.keywords for c in self.codes if c.keywords and c.is_codable}

    def table(self) -> pd.DataFrame:
        """Return the codebook as a flat table, one row per code.

        Returns
        -------
        DataFrame
            ``code``, ``name``, ``parent``, ``depth``, ``path`` (ids from the root,
            joined by `` > ``), ``is_codable``, ``definition``, ``use_when``,
            ``not_when``, ``examples`` and ``keywords`` (joined by ``; ``),
            ``color``.
        """
        rows = [
            {
                "code": c.id,
                "name": c.name,
                "parent": c.parent,
                "depth": self.depth(c.id),
                "path": " > ".join([*self.ancestors(c.id), c.id]),
                "is_codable": c.is_codable,
                "definition": c.definition,
                "use_when": c.use_when,
                "not_when": c.not_when,
                "examples": "; ".join(c.examples),
                "keywords": "; ".join(c.keywords),
                "color": c.color,
            }
            for c in self.codes
        ]
        return pd.DataFrame(rows, columns=TABLE_COLUMNS)


# --------------------------------------------------------------------------------
# YAML
# --------------------------------------------------------------------------------


class _LineLoader(yaml.SafeLoader):
    """A safe YAML loader that records each mapping's line as ``__line__``."""


def _construct_mapping_with_line(loader, node, deep=False):
    mapping = yaml.SafeLoader.construct_mapping(loader, node, deep=deep)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping_with_line
)


def load_codebook(path: Path) -> Codebook:
    """Load a codebook from YAML, or from a REFI-QDA ``.qdc`` file.

    Parameters
    ----------
    path : Path
        ``codebook.yml`` (``version`` and ``codes``, children nested under
        ``children`` or linked by ``parent``) or a ``.qdc`` file.

    Returns
    -------
    Codebook

    Raises
    ------
    HeardInputError
        Text that is not UTF-8, invalid YAML, a code without an id or name, a
        duplicate id, an unknown parent, a badly formed colour; each names the
        file and line.
    """
    path = Path(path)
    if path.suffix.lower() == ".qdc":
        return read_qdc(path)
    document = _read_codebook_yaml(path)
    codes = _flatten_codes(document["codes"], path, parent=None)
    version = document.get("version")
    codebook = Codebook(
        tuple(code for code, _ in codes),
        version=None if version is None else str(version),
        sets=_read_sets(document.get("sets") or {}),
    )
    check_codebook(codebook, path, lines={code.id: line for code, line in codes})
    log.info("read %d codes (version %s) from %s", len(codebook), version, path)
    return codebook


def _read_codebook_yaml(path: Path) -> dict:
    """Return the parsed ``codebook.yml``, each mapping carrying ``__line__``;
    raise on text that is not UTF-8, invalid YAML, or no list under ``codes``."""
    with open_raw(path) as handle:
        raw_bytes = handle.read()
    try:
        text = raw_bytes.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise HeardInputError(
            path,
            row=raw_bytes.count(b"\n", 0, error.start) + 1,
            expected="UTF-8 text",
            found=f"byte {raw_bytes[error.start]:#04x}, not UTF-8",
            fix="save codebook.yml as UTF-8 (most editors: Save as, Encoding: UTF-8)",
        ) from error
    try:
        document = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - safe subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise HeardInputError(
            path,
            row=mark.line + 1 if mark else None,
            expected="valid YAML",
            found=str(getattr(error, "problem", error)),
            fix="check the indentation, colons and quotes on that line",
        ) from error
    if not isinstance(document, dict) or not isinstance(document.get("codes"), list):
        raise HeardInputError(
            path,
            expected="a mapping with `version` and a list under `codes`",
            found=type(document).__name__,
            fix="see the codebook example in docs/study-folder.md",
        )
    return document


def _flatten_codes(entries: list, path: Path, *, parent: str | None) -> list:
    """Return (Code, line) pairs in tree order from nested YAML entries."""
    pairs = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise HeardInputError(
                path,
                expected="each code as a mapping with id and name",
                found=entry,
                fix="write each code as `- id: ...` with `name:` below it",
            )
        line = entry.get("__line__")
        code = _build_code(entry, path, line=line, parent=parent)
        pairs.append((code, line))
        pairs.extend(_flatten_codes(entry.get("children") or [], path, parent=code.id))
    return pairs


def _build_code(entry: dict, path: Path, *, line: int | None, parent) -> Code:
    """Return a Code from one YAML mapping, checking its id and name."""
    code_id = str(entry.get("id") or "").strip()
    if not ID_PATTERN.match(code_id):
        raise HeardInputError(
            path,
            row=line,
            column="id",
            expected="an id that starts with a letter (letters, digits, - _ .)",
            found=code_id or "nothing",
            fix="give the code a short stable id such as OBJ-PRICE",
        )
    name = str(entry.get("name") or "").strip()
    if not name:
        raise HeardInputError(
            path,
            row=line,
            column="name",
            expected=f"a name for code {code_id}",
            found="nothing",
            fix="add `name:` under the code's id",
        )
    return Code(
        id=code_id,
        name=name,
        definition=_text(entry.get("definition")),
        use_when=_text(entry.get("use_when")),
        not_when=_text(entry.get("not_when")),
        examples=_strings(entry.get("examples")),
        keywords=_strings(entry.get("keywords")),
        parent=str(entry["parent"]).strip() if entry.get("parent") else parent,
        color=str(entry["color"]).strip() if entry.get("color") else None,
        is_codable=bool(entry.get("is_codable", True)),
    )


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def _strings(value) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str | int | float):
        return (str(value).strip(),)
    return tuple(str(item).strip() for item in value if str(item).strip())


def _read_sets(sets: dict) -> dict[str, tuple[str, ...]]:
    return {
        str(name): _strings(members)
        for name, members in sets.items()
        if name != "__line__"
    }


def check_codebook(
    codebook: Codebook, path: Path, *, lines: dict | None = None
) -> Codebook:
    """Raise when there are no codes, ids repeat (ignoring case), a parent is
    unknown, a colour is malformed, or a set names an unknown code; return
    `codebook` otherwise."""
    lines = lines or {}
    seen = _check_ids(codebook, path, lines=lines)
    for code in codebook.codes:
        if code.parent is not None and code.parent not in seen:
            raise HeardInputError(
                path,
                row=lines.get(code.id),
                column="parent",
                expected="the id of another code",
                found=code.parent,
                fix=f"nest {code.id} under an existing code or fix its parent",
            )
        if _has_cycle(codebook, code.id):
            raise HeardInputError(
                path,
                row=lines.get(code.id),
                column="parent",
                expected="a tree: no code may sit under itself",
                found=code.parent,
            )
        if code.color is not None and not COLOR_PATTERN.match(code.color):
            raise HeardInputError(
                path,
                row=lines.get(code.id),
                column="color",
                expected="a colour like #1F77B4",
                found=code.color,
            )
    for name, members in codebook.sets.items():
        unknown = [member for member in members if member not in seen]
        if unknown:
            raise HeardInputError(
                path,
                column="sets",
                expected=f"codes of this codebook in set {name!r}",
                found=", ".join(unknown),
            )
    return codebook


def _check_ids(codebook: Codebook, path: Path, *, lines: dict) -> set[str]:
    """Return the codebook's ids; raise when there are none or two are equal
    once case is ignored (coding sheets read codes case-blind)."""
    if not codebook.codes:
        raise HeardInputError(
            path,
            expected="at least one code",
            found="no codes",
            fix="list the codes under `codes:` (see docs/study-folder.md)",
        )
    seen: dict[str, str] = {}
    for code in codebook.codes:
        if code.id.casefold() in seen:
            raise HeardInputError(
                path,
                row=lines.get(code.id),
                column="id",
                expected="each code id used once, whatever its case",
                found=code.id,
                fix="rename one of the two codes; ids must stay stable once coded",
            )
        seen[code.id.casefold()] = code.id
    return set(seen.values())


def _has_cycle(codebook: Codebook, code_id: str) -> bool:
    parent, steps = codebook[code_id].parent, 0
    while parent is not None and steps <= len(codebook):
        if parent == code_id:
            return True
        parent, steps = codebook[parent].parent, steps + 1
    return False


def save_codebook_yaml(codebook: Codebook, target: Path) -> Path:
    """Write `codebook` as nested YAML (e.g. one imported from a ``.qdc`` file)."""

    def entry(code: Code) -> dict:
        item = {"id": code.id, "name": code.name}
        for key in ("definition", "use_when", "not_when", "color"):
            if getattr(code, key):
                item[key] = getattr(code, key)
        for key in ("examples", "keywords"):
            if getattr(code, key):
                item[key] = list(getattr(code, key))
        if not code.is_codable:
            item["is_codable"] = False
        children = [entry(codebook[child]) for child in codebook.children(code.id)]
        if children:
            item["children"] = children
        return item

    document = {
        "version": codebook.version,
        "codes": [entry(codebook[root]) for root in codebook.children(None)],
    }
    if codebook.sets:
        document["sets"] = {name: list(ids) for name, ids in codebook.sets.items()}
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=88)
    return save_text(text, target)


# --------------------------------------------------------------------------------
# REFI-QDA codebook (.qdc)
# --------------------------------------------------------------------------------


def code_guid(code_id: str) -> str:
    """Return the code's REFI-QDA guid: uuid5 of its id, upper case, so it never
    changes between exports."""
    return str(uuid.uuid5(GUID_NAMESPACE, code_id)).upper()


def codebook_to_qdc(codebook: Codebook) -> str:
    """Return `codebook` as a REFI-QDA codebook document (``.qdc`` XML).

    Returns
    -------
    str
        XML with root ``CodeBook`` in namespace ``urn:QDA-XML:codebook:1.0``;
        ``Codes`` nest as in the codebook, each ``Code`` with ``guid`` (see
        :func:`code_guid`), ``name``, ``isCodable``, optional ``color`` and a
        ``Description``; ``Sets`` (only when the codebook has sets) list
        ``MemberCode`` guids.

    Notes
    -----
    The Heard id travels in the ``Description``: the definition comes first, as
    other tools show it, then a line ``[heard]`` and a small YAML block with
    ``id``, ``use_when``, ``not_when``, ``examples`` and ``keywords``. The name
    stays the plain name coders see in NVivo, ATLAS.ti, MAXQDA or QualCoder
    (putting the id in the name would clutter every code list there), and
    those tools keep descriptions through their own round trips. If a tool drops
    the block, :func:`read_qdc` falls back to an id made from the name.
    """
    ET.register_namespace("", QDC_NAMESPACE)
    origin = "Heard" + (
        f"; codebook version {codebook.version}" if codebook.version else ""
    )
    root = ET.Element(_qname("CodeBook"), {"origin": origin})
    codes = ET.SubElement(root, _qname("Codes"))
    for root_id in codebook.children(None):
        _append_code(codes, codebook, root_id)
    if codebook.sets:
        sets = ET.SubElement(root, _qname("Sets"))
        for name, members in codebook.sets.items():
            guid = str(uuid.uuid5(GUID_NAMESPACE, f"set:{name}")).upper()
            element = ET.SubElement(sets, _qname("Set"), {"guid": guid, "name": name})
            for member in members:
                ET.SubElement(
                    element, _qname("MemberCode"), {"guid": code_guid(member)}
                )
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + body + "\n"


def _qname(tag: str) -> str:
    return f"{{{QDC_NAMESPACE}}}{tag}"


def _append_code(parent: ET.Element, codebook: Codebook, code_id: str) -> None:
    code = codebook[code_id]
    attributes = {
        "guid": code_guid(code.id),
        "name": code.name,
        "isCodable": "true" if code.is_codable else "false",
    }
    if code.color:
        attributes["color"] = code.color
    element = ET.SubElement(parent, _qname("Code"), attributes)
    ET.SubElement(element, _qname("Description")).text = _describe(code)
    for child in codebook.children(code.id):
        _append_code(element, codebook, child)


def _describe(code: Code) -> str:
    details = {"id": code.id}
    for key in ("use_when", "not_when"):
        if getattr(code, key):
            details[key] = getattr(code, key)
    for key in ("examples", "keywords"):
        if getattr(code, key):
            details[key] = list(getattr(code, key))
    block = yaml.safe_dump(details, sort_keys=False, allow_unicode=True, width=1000)
    return f"{code.definition}\n\n{HEARD_MARKER}\n{block}".lstrip("\n")


def save_qdc(codebook: Codebook, target: Path) -> Path:
    """Write `codebook` to a REFI-QDA ``.qdc`` file, atomically."""
    return save_text(codebook_to_qdc(codebook), target)


def read_qdc(path: Path) -> Codebook:
    """Read a REFI-QDA codebook (``.qdc``) written by Heard or another tool.

    Parameters
    ----------
    path : Path
        The ``.qdc`` file. Any ``urn:QDA-XML:codebook:*`` namespace is accepted
        (ATLAS.ti writes ``0:4``); ``MemberCode`` may carry ``guid`` or
        ``targetGUID``.

    Returns
    -------
    Codebook
        Ids from the Description's ``[heard]`` block when present, else made
        from the name (upper case, words joined by ``-``), with a warning.

    Raises
    ------
    HeardInputError
        Not XML, a root other than ``CodeBook``, a code without guid or name, a
        set member that is not a code.
    """
    path = Path(path)
    with open_raw(path) as handle:
        try:
            root = ET.parse(handle).getroot()
        except ET.ParseError as error:
            raise HeardInputError(
                path,
                row=error.position[0],
                expected="a REFI-QDA codebook (XML)",
                found=str(error),
                fix="export the codebook again as a REFI-QDA codebook (.qdc)",
            ) from error
    if _local(root.tag) != "CodeBook":
        raise HeardInputError(
            path, expected="root element CodeBook", found=_local(root.tag)
        )

    # Walk the code tree, then map set members from guids to ids.
    codes, guid_to_id = [], {}
    codes_element = _child(root, "Codes")
    for element in [] if codes_element is None else _children(codes_element, "Code"):
        _read_code(element, path, parent=None, codes=codes, guid_to_id=guid_to_id)
    sets = _read_qdc_sets(root, path, guid_to_id)
    match = re.search(r"codebook version (\S+)", root.get("origin", ""))
    codebook = Codebook(tuple(codes), version=match[1] if match else None, sets=sets)
    log.info("read %d codes from %s", len(codebook), path)
    return check_codebook(codebook, path)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    found = _children(element, name)
    return found[0] if found else None


def _read_code(element, path, *, parent, codes, guid_to_id) -> None:
    guid, name = element.get("guid"), (element.get("name") or "").strip()
    if not guid or not name:
        raise HeardInputError(
            path,
            expected="every Code with a guid and a name",
            found=ET.tostring(element, encoding="unicode")[:80],
        )
    description = _child(element, "Description")
    text = (description.text or "") if description is not None else ""
    definition, details = _split_description(text)
    code_id = str(details.get("id") or _id_from_name(name, taken=guid_to_id.values()))
    if "id" not in details:
        log.warning("code %r in %s has no Heard id; using %s", name, path, code_id)
    codes.append(
        Code(
            id=code_id,
            name=name,
            definition=definition,
            use_when=_text(details.get("use_when")),
            not_when=_text(details.get("not_when")),
            examples=_strings(details.get("examples")),
            keywords=_strings(details.get("keywords")),
            parent=parent,
            color=element.get("color"),
            is_codable=element.get("isCodable", "true").strip().lower()
            in ("true", "1"),
        )
    )
    guid_to_id[guid.strip("{}").upper()] = code_id
    for child in _children(element, "Code"):
        _read_code(child, path, parent=code_id, codes=codes, guid_to_id=guid_to_id)


def _split_description(text: str) -> tuple[str, dict]:
    """Split a Description into the definition and the ``[heard]`` details."""
    head, marker, tail = text.rpartition(f"{HEARD_MARKER}\n")
    if not marker:
        return text.strip(), {}
    try:
        details = yaml.safe_load(tail) or {}
    except yaml.YAMLError:
        return text.strip(), {}
    return head.strip(), details if isinstance(details, dict) else {}


def _id_from_name(name: str, *, taken) -> str:
    base = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").upper() or "CODE"
    base = base if base[0].isalpha() else f"C-{base}"
    candidate, number = base, 2
    while candidate in set(taken):
        candidate, number = f"{base}-{number}", number + 1
    return candidate


def _read_qdc_sets(root, path, guid_to_id) -> dict[str, tuple[str, ...]]:
    sets_element = _child(root, "Sets")
    sets = {}
    for element in [] if sets_element is None else _children(sets_element, "Set"):
        members = []
        for member in _children(element, "MemberCode"):
            guid = (member.get("guid") or member.get("targetGUID") or "").strip("{}")
            if guid.upper() not in guid_to_id:
                raise HeardInputError(
                    path,
                    column="MemberCode",
                    expected="guids of codes in this codebook",
                    found=guid,
                )
            members.append(guid_to_id[guid.upper()])
        sets[element.get("name", "")] = tuple(members)
    return sets
