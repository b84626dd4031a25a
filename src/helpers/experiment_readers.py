"""Results files read into sufficient statistics per arm.

Every results kind an experiment can name (docs/study-folder.md, section 04) ends as
one table with a row per arm: ``n`` and, per value column, the sum, the sum of
squares and the cross-products ratio metrics need. Row-level files are summed per
unit, then per arm, in DuckDB, reading only the needed columns; ad-platform and
Klaviyo exports are matched by header name (FORMATS.md, section 3).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.errors import HeardInputError
from helpers.schemas import ARMS, validate

log = logging.getLogger(__name__)

# Row-level value columns: how a unit's rows combine, and the arm table's name.
UNIT_COLUMNS = {
    "converted": ("max", "conversions"),
    "visited": ("max", "visits"),
    "unsubscribed": ("max", "unsubscribes"),
    "revenue": ("sum", "revenue"),
    "orders": ("sum", "orders"),
    "spend": ("sum", "spend"),
    "impressions": ("sum", "impressions"),
    "clicks": ("sum", "clicks"),
}


def read_results(definition: dict) -> tuple[pd.DataFrame, pd.DataFrame | None, dict]:
    """Read an experiment's results and reduce them to sufficient statistics.

    Parameters
    ----------
    definition : dict
        From :func:`load_experiment`; ``results.file`` is read from its folder.

    Returns
    -------
    tuple
        ``(arms, units, info)``. ``arms`` has one row per variant id (control
        first): ``variant``, ``n`` and, for each value column present, its sum
        (``revenue``), sum of squares (``revenue_sq``) and the cross-products of
        ratio metrics (``revenue_x_orders``). ``units`` holds per-unit values
        for the bootstrap when the results are row-level and small enough
        (``bootstrap_max_units``), else None. ``info`` holds ``n_rows``,
        ``n_mixed_units`` (units seen in two arms, left out) and ``revenue_cap``.
        A planned experiment (no ``results:`` entry) gives an empty ``arms``,
        no units and ``info["is_planned"]``.

    Raises
    ------
    HeardInputError
        When the file is missing, a needed column is absent, values are not
        numbers, or the arms found do not match the defined variants.
    """
    spec = definition["results"]
    if spec is None:
        # A planned experiment: nothing to read yet.
        arms = pd.DataFrame(
            {"variant": pd.Series(dtype=object), "n": pd.Series(dtype=float)}
        )
        return arms, None, {"is_planned": True}
    path = Path(definition["folder"]) / str(spec.get("file", ""))
    if not path.is_file():
        raise HeardInputError(
            path,
            expected="the results file named in results.file",
            found="nothing there",
            fix="put the export beside experiment.yml or correct results.file; "
            "leave results: out of experiment.yml while the test is only planned",
        )
    kind = spec["kind"]
    if kind == "arms":
        arms, units, info = _read_arm_table(definition, path), None, {}
    elif kind == "klaviyo":
        arms, units, info = _read_klaviyo(definition, path), None, {}
    else:
        source = path if kind == "rows" else _read_ad_export(kind, path)
        arms, units, info = aggregate_rows(source, definition, file=path)
    arms = validate(_map_variants(arms, definition, path), ARMS, file=path)
    if units is not None:
        mapping = {str(k): str(v) for k, v in (spec.get("variant_map") or {}).items()}
        units = units.assign(
            variant=units["variant"].astype(str).map(lambda v: mapping.get(v, v))
        )
    log.info(
        "read %s (%s): %s arms, %s units",
        path.name,
        kind,
        len(arms),
        f"{int(arms['n'].sum()):,}",
    )
    return arms, units, info


def _needed_columns(definition: dict) -> tuple[dict, list[tuple[str, str]]]:
    """Return value column -> (unit aggregate, arm name) and the ratio pairs."""
    columns = dict(UNIT_COLUMNS)
    pairs = []
    for kind, numerator, denominator, _ in definition["metrics"].values():
        for column in (numerator, denominator):
            if (
                column
                and column not in columns
                and column not in {arm for _, arm in UNIT_COLUMNS.values()}
            ):
                columns[column] = ("max" if kind == "proportion" else "sum", column)
        if kind == "ratio":
            pairs.append((numerator, denominator))
    return columns, pairs


def aggregate_rows(source, definition: dict, *, file: Path | None = None):
    """Sum row-level results per unit, then per arm, in DuckDB.

    Parameters
    ----------
    source : Path or DataFrame
        A CSV or Parquet file of rows (read by DuckDB, only the needed columns),
        or an already-read frame (ad exports, spreadsheets).
    definition : dict
        From :func:`load_experiment`: ``results.variant_column``,
        ``results.unit_column``, ``results.column_map``,
        ``results.value_per_conversion``, ``capping``.

    Returns
    -------
    tuple
        ``(arms, units, info)`` as :func:`read_results` describes; ``variant``
        still holds the file's labels.

    Notes
    -----
    A unit's rows combine by sum (revenue, orders, spend, impressions, clicks)
    or max (0/1 flags: converted, visited, unsubscribed). A unit found in more
    than one arm is left out and counted in ``info["n_mixed_units"]``. Without
    ``converted``, a unit converted when its orders are above zero; without
    ``orders``, a converted unit counts one order.
    """
    import duckdb

    spec = definition["results"]
    file = Path(file or source)
    connection = duckdb.connect()
    try:
        relation = _register_source(connection, source, file)
        described = connection.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
        available = {str(row[0]).lower(): str(row[0]) for row in described}
        types = {str(row[0]): str(row[1]) for row in described}
        variant = _find_column(available, spec.get("variant_column", "variant"), file)
        unit = spec.get("unit_column")
        unit = _find_column(available, unit, file) if unit else None
        if unit:
            _refuse_mangled_ids(connection, relation, unit, types, file)
        present, pairs = _present_columns(definition, available, file)
        _refuse_text_values(connection, relation, present, types, file)

        # Per unit, materialised once; mixed units stay out of every sum.
        derived = _derived_columns(present, spec.get("value_per_conversion"))
        connection.execute(
            "CREATE TEMP TABLE per_unit AS SELECT *"
            f"{derived} FROM ({_per_unit_sql(relation, variant, unit, present, types)})"
        )
        n_mixed = connection.execute(
            "SELECT count(*) FROM per_unit WHERE is_mixed"
        ).fetchone()[0]
        described = connection.execute("DESCRIBE per_unit").fetchall()
        values = [
            r[0] for r in described if r[0] not in ("unit", "variant", "is_mixed")
        ]
        cap = _revenue_cap(connection, definition, values)

        # Per arm, and per unit for the bootstrap when the test is small enough.
        arms = connection.execute(_arm_sql(values, pairs, cap)).fetchdf()
        units = None
        if arms["n"].sum() <= int(definition.get("bootstrap_max_units", 200_000)):
            capped = (
                "" if cap is None else f", least(revenue, {cap!r}) AS revenue_capped"
            )
            units = connection.execute(
                f"SELECT variant, * EXCLUDE (variant, is_mixed){capped} FROM per_unit "
                "WHERE NOT is_mixed"
            ).fetchdf()
    finally:
        connection.close()
    if n_mixed:
        log.warning("%s units appear in more than one arm and were left out", n_mixed)
    return arms, units, {"n_mixed_units": int(n_mixed), "revenue_cap": cap}


def _present_columns(definition: dict, available: dict, file: Path) -> tuple:
    """Return Heard's value columns found in the file (arm name -> (how, file
    column)) and the ratio metrics' column pairs."""
    columns, pairs = _needed_columns(definition)
    column_map = definition["results"].get("column_map") or {}
    mapped = {str(v).lower() for k, v in column_map.items() if str(k) != str(v)}
    present = {}
    for heard, (how, arm_name) in columns.items():
        name = str(column_map.get(heard, heard)).lower()
        # A file column mapped to another name is not read again under its own.
        if heard not in column_map and name in mapped:
            continue
        if name in available:
            present[arm_name] = (how, available[name])
    if not present:
        raise HeardInputError(
            file,
            expected=f"value columns among {list(columns)}",
            found=list(available.values()),
            fix="map them with results.column_map (Heard's name: the file's name)",
        )
    return present, pairs


def _refuse_text_values(
    connection, relation: str, present: dict, types: dict, file: Path
) -> None:
    """Raise HeardInputError at the first cell of a text-typed value column that
    is not a number (``$40``, ``n/a``), which a silent cast would count as 0."""
    for _, column in present.values():
        if str(types.get(column, "")).upper().startswith(NUMERIC_TYPES):
            continue
        found = connection.execute(
            f'SELECT rn, value FROM (SELECT row_number() OVER () AS rn, "{column}" '
            f"AS value FROM {relation}) WHERE trim(CAST(value AS VARCHAR)) <> '' "
            "AND TRY_CAST(value AS DOUBLE) IS NULL ORDER BY rn LIMIT 1"
        ).fetchone()
        if found is not None:
            raise HeardInputError(
                file,
                row=int(found[0]) + 1,
                column=column,
                expected="a plain number (no currency sign, separator or text)",
                found=found[1],
                fix="correct the cell, or export the column as numbers",
            )


SCIENTIFIC_ID = r"^-?[0-9](\.[0-9]+)?[eE]\+?[0-9]+$"


def _refuse_mangled_ids(connection, relation: str, unit: str, types: dict, file):
    """Raise HeardInputError when the unit ids went through a spreadsheet that
    wrote long ids as ``1.20253E+17``: distinct campaigns then share one id and
    would be summed as one unit, which cannot be undone (FORMATS.md 3a)."""
    kind = str(types.get(unit, "")).upper()
    if kind.startswith(("DOUBLE", "FLOAT", "REAL")):
        test = "abs(value) >= 1e15"
    elif kind.startswith("VARCHAR"):
        test = f"regexp_matches(trim(value), '{SCIENTIFIC_ID}')"
    else:
        return
    # An export read by pandas carries its file rows; a file's rows follow its header.
    row = "file_row" if "file_row" in types else "row_number() OVER () + 1"
    found = connection.execute(
        f'SELECT rn, value FROM (SELECT {row} AS rn, "{unit}" AS value '
        f"FROM {relation}) WHERE {test} ORDER BY rn LIMIT 1"
    ).fetchone()
    if found is not None:
        raise HeardInputError(
            file,
            row=int(found[0]),
            column=unit,
            expected="unit ids written out in full",
            found=found[1],
            fix="name the unit by a text column instead (results.unit_column, e.g. "
            "Campaign name), or export again without opening the file in a "
            "spreadsheet: ids in scientific notation cannot be told apart",
        )


def _revenue_cap(connection, definition: dict, values: list[str]) -> float | None:
    """Return the capping value: a quantile of per-unit revenue among units with
    revenue (most units have none), or None without ``capping.revenue``."""
    quantile = (definition.get("capping") or {}).get("revenue")
    if not quantile or "revenue" not in values:
        return None
    cap = connection.execute(
        "SELECT quantile_cont(revenue, ?) FROM per_unit "
        "WHERE revenue > 0 AND NOT is_mixed",
        [float(quantile)],
    ).fetchone()[0]
    return None if cap is None else float(cap)


def _arm_sql(values: list[str], pairs: list, cap: float | None) -> str:
    """Return the per-arm query: n, sums, sums of squares, cross-products."""
    sums = [f'sum("{c}") AS "{c}", sum("{c}" * "{c}") AS "{c}_sq"' for c in values]
    sums += [
        f'sum("{a}" * "{b}") AS "{a}_x_{b}"'
        for a, b in pairs
        if a in values and b in values
    ]
    if cap is not None:
        capped = f"least(revenue, {cap!r})"
        sums.append(
            f"sum({capped}) AS revenue_capped, "
            f"sum({capped} * {capped}) AS revenue_capped_sq"
        )
    return (
        f"SELECT variant, count(*) AS n, {', '.join(sums)} FROM per_unit "
        "WHERE NOT is_mixed GROUP BY variant ORDER BY variant"
    )


def _register_source(connection, source, file: Path) -> str:
    if isinstance(source, pd.DataFrame):
        connection.register("source_rows", source)
        return "source_rows"
    suffix = file.suffix.lower()
    quoted = str(file).replace("'", "''")
    if suffix == ".parquet":
        return f"read_parquet('{quoted}')"
    if suffix in (".csv", ".txt", ".tsv"):
        return f"read_csv('{quoted}', header = true)"
    if suffix in (".xlsx", ".xls"):
        connection.register("source_rows", pd.read_excel(file))
        return "source_rows"
    raise HeardInputError(
        file, expected="a .csv, .parquet or .xlsx file", found=suffix or "no extension"
    )


def _find_column(available: dict, name: str, file: Path) -> str:
    if str(name).lower() not in available:
        raise HeardInputError(
            file,
            column=str(name),
            expected=f"a column '{name}'",
            found=list(available.values()),
            fix="name it in results.variant_column / results.unit_column",
        )
    return available[str(name).lower()]


NUMERIC_TYPES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "BOOLEAN",
)


def _per_unit_sql(
    relation: str, variant: str, unit: str | None, present: dict, types: dict
) -> str:
    """Return the per-unit query. Numeric columns are aggregated as stored and
    cast once per unit; text columns are parsed row by row (TRY_CAST)."""

    def value(column: str) -> str:
        if str(types.get(column, "")).upper().startswith(NUMERIC_TYPES):
            return f'"{column}"'
        return f'TRY_CAST("{column}" AS DOUBLE)'

    if unit is None:
        selected = ", ".join(
            f'coalesce(CAST({value(column)} AS DOUBLE), 0) AS "{name}"'
            for name, (_, column) in present.items()
        )
        return (
            f'SELECT CAST("{variant}" AS VARCHAR) AS variant, FALSE AS is_mixed, '
            f"{selected} FROM {relation}"
        )
    # A unit's arm: any of its labels; it is mixed when the labels' hashes differ.
    combined = ", ".join(
        f'coalesce(CAST({how}({value(column)}) AS DOUBLE), 0) AS "{name}"'
        for name, (how, column) in present.items()
    )
    return (
        f'SELECT "{unit}" AS unit, CAST(any_value("{variant}") AS VARCHAR) AS variant,'
        f' min(hash("{variant}")) <> max(hash("{variant}")) AS is_mixed, {combined} '
        f'FROM {relation} GROUP BY "{unit}"'
    )


def _derived_columns(present: dict, value_per_conversion) -> str:
    extra = []
    if "conversions" not in present and "orders" in present:
        extra.append("CAST(orders > 0 AS DOUBLE) AS conversions")
    if "orders" not in present and "conversions" in present:
        extra.append("conversions AS orders")
    has_orders = "orders" in present or "conversions" in present
    if "revenue" not in present and value_per_conversion and has_orders:
        source = "orders" if "orders" in present else "conversions"
        extra.append(f"{source} * {float(value_per_conversion)} AS revenue")
    return "".join(f", {e}" for e in extra)


def _read_table(path: Path, *, encoding: str = "utf-8-sig", **kwargs) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix in (".xlsx", ".xls"):
        return pd.read_excel(path, dtype=str, **kwargs)
    if "sep" not in kwargs:
        kwargs["sep"] = _csv_delimiter(path, encoding)
    try:
        return pd.read_csv(path, dtype=str, encoding=encoding, **kwargs)
    except (pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise HeardInputError(
            path,
            expected="a CSV UTF-8 results file with a header row",
            found=f"{type(error).__name__}: {error}",
            fix="export the results again (CSV UTF-8)",
        ) from error


DECIMAL_COMMA = r"^-?\d{1,3}(\.\d{3})*,\d{1,2}$|^-?\d+,\d{1,2}$"


def _csv_delimiter(path: Path, encoding: str) -> str:
    """Return ``;`` for a file whose header has semicolons and no commas (an
    export re-saved by a European Excel), else ``,``."""
    try:
        with path.open(encoding=encoding) as handle:
            header = handle.readline()
    except UnicodeDecodeError:
        return ","
    return ";" if ";" in header and "," not in header else ","


def _to_numbers(
    frame: pd.DataFrame,
    columns: list[str],
    path: Path,
    *,
    first_row: int = 2,
    labels: dict | None = None,
) -> pd.DataFrame:
    """Return `frame` with `columns` as floats; ``$``, ``%``, thousands commas and
    ``--`` blanks tolerated, anything else refused with its file row (the frame's
    index plus `first_row`, the file line of index 0) and its column as the file
    names it (`labels`: frame column -> file header).

    A decimal comma (``1.234,56`` or ``12,50``, from an export in German or
    French number format) is refused: dropping the comma would read it as
    another number."""
    result = frame.copy()
    for column in columns:
        text = result[column].astype("string").str.strip()
        cleaned = text.str.replace(r"[$,%\s]", "", regex=True).replace(
            {"--": "", "-": ""}
        )
        numbers = pd.to_numeric(cleaned.replace("", pd.NA), errors="coerce")
        comma = text.str.replace(r"[$%\s]", "", regex=True).str.match(DECIMAL_COMMA)
        bad = (numbers.isna() & cleaned.fillna("").ne("")) | comma.fillna(False)
        if bad.any():
            position = int(np.flatnonzero(bad.to_numpy())[0])
            raise HeardInputError(
                path,
                row=int(result.index[position]) + first_row,
                column=(labels or {}).get(column, column),
                expected="a number with a decimal point",
                found=text.iloc[position],
                fix="correct the cell, or export the report with English number "
                "format (a decimal comma cannot be read without guessing)",
            )
        result[column] = numbers.fillna(0.0).astype(float)
    return result


def _read_arm_table(definition: dict, path: Path) -> pd.DataFrame:
    spec = definition["results"]
    table = _read_table(path)
    table.columns = [str(c).strip() for c in table.columns]
    renames = {v: k for k, v in (spec.get("column_map") or {}).items()}
    renames[spec.get("variant_column", "variant")] = "variant"
    table = table.rename(columns=renames)
    if "variant" not in table or "n" not in table:
        raise HeardInputError(
            path,
            column="variant" if "variant" not in table else "n",
            expected="columns `variant` and `n` (units per arm)",
            found=list(table.columns),
            fix="see docs/study-folder.md",
        )
    values = [c for c in table.columns if c != "variant"]
    _refuse_blank_or_partial_counts(table, values, path)
    table = _to_numbers(table.astype({c: "string" for c in values}), values, path)
    table["variant"] = table["variant"].astype(str).str.strip()
    return table.groupby("variant", as_index=False, sort=False).sum()


def _refuse_blank_or_partial_counts(table: pd.DataFrame, values: list, path: Path):
    """Raise on a blank cell (in a typed table a blank is not a zero) or on a
    count of units or conversions that is not whole."""
    for column in values:
        text = table[column].astype("string").str.strip().fillna("")
        count = pd.to_numeric(text.str.replace(r"[$,%\s]", "", regex=True),
                              errors="coerce")  # fmt: skip
        is_count = column in ("n", "conversions")
        partial = count.notna() & (count % 1 != 0) & is_count
        for bad, fix in (
            (text == "", "fill in the cell (write 0 when there were none)"),
            (partial, "write the count as a whole number"),
        ):
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise HeardInputError(
                    path, row=row + 2, column=column,
                    expected="a whole number" if is_count else "a number",
                    found=text.iloc[row] or "a blank cell", fix=fix,
                )  # fmt: skip


# Klaviyo and ad-platform headers, matched case-insensitively (FORMATS.md 3).
KLAVIYO_COLUMNS = {
    r"total recipients": "n",
    r"unique (placed order|ordered product|purchase event|.*order.*)": "conversions",
    r"revenue|(placed order|ordered product|purchase event) value": "revenue",
    r"unsubscribes": "unsubscribes",
    r"unique clicks": "visits",
}
META_COLUMNS = {
    r"(amount spent|valor gasto|montant dépensé)( \([a-z]{3}\))?": "spend",
    r"impressions": "impressions",
    r"link clicks|cliques no link": "clicks",
    r"(website )?purchases": "orders",
    r"(website )?purchases conversion value": "revenue",
}
GOOGLE_COLUMNS = {
    r"cost": "spend",
    r"impr\.?|impressions": "impressions",
    r"clicks": "clicks",
    r"conversions": "orders",
    r"conv\. value": "revenue",
}


def _match_headers(columns, patterns: dict) -> dict:
    renames = {}
    for column in columns:
        key = str(column).strip().lstrip("\ufeff").lower()
        for pattern, heard in patterns.items():
            if re.fullmatch(pattern, key) and heard not in renames.values():
                renames[column] = heard
                break
    return renames


def _read_klaviyo(definition: dict, path: Path) -> pd.DataFrame:
    spec = definition["results"]
    table = _read_table(path)
    variant = spec.get("variant_column", "Variant Name")
    if variant not in table:
        raise HeardInputError(
            path,
            column=variant,
            expected="the column naming each row's arm",
            found=list(table.columns),
            fix="set results.variant_column, e.g. Variant Name",
        )
    renames = _match_headers(
        [c for c in table.columns if c != variant], KLAVIYO_COLUMNS
    )
    if "n" not in renames.values():
        raise HeardInputError(
            path,
            column="Total Recipients",
            expected="Klaviyo's recipients column",
            found=list(table.columns),
        )
    table = table.rename(columns={**renames, variant: "variant"})
    values = sorted(set(renames.values()))
    labels = {heard: header for header, heard in renames.items()}
    table = _to_numbers(table[["variant", *values]], values, path, labels=labels)
    return table.groupby("variant", as_index=False, sort=False).sum()


def _read_ad_export(kind: str, path: Path) -> pd.DataFrame:
    """Return a Meta or Google Ads export as rows with Heard's column names, totals
    rows and title lines dropped; other columns keep their own names, and
    ``file_row`` says each row's line in the file."""
    first_row = 2
    if kind == "google_ads":
        table, first_row = _read_google_table(path)
        first = table.columns[0]
        table = table[
            ~table[first].fillna("").str.strip().str.match(r"(?i)^(total|gesamt)")
        ]
        patterns = GOOGLE_COLUMNS
    else:
        table = _read_table(path)
        names = [c for c in table.columns if re.search(r"(name|id)$", str(c).lower())]
        if names:
            table = table[table[names].notna().any(axis=1)]
        patterns = META_COLUMNS
    renames = _match_headers(table.columns, patterns)
    table = table.rename(columns=renames).assign(file_row=table.index + first_row)
    return _to_numbers(
        table,
        sorted(set(renames.values())),
        path,
        first_row=first_row,
        labels={heard: header for header, heard in renames.items()},
    )


GOOGLE_HEADER_CELLS = {"cost", "impr.", "clicks", "impressions"}


def _read_google_table(path: Path) -> tuple[pd.DataFrame, int]:
    """Return a Google Ads download as text cells under its own header, the
    report title and date-range lines above it skipped, and the file row of its
    first data row.

    Notes
    -----
    Three forms (FORMATS.md 3b): ``.csv`` (UTF-8, commas), "Excel .csv"
    (UTF-16 with a byte-order mark, tabs) and ``.xlsx``, each with the title
    lines first. The header is the first of the top five lines naming one of
    ``Cost``, ``Impr.`` or ``Clicks``.
    """
    if path.suffix.lower() in (".xlsx", ".xls"):
        top = pd.read_excel(path, header=None, dtype=str, nrows=5).fillna("")
        lines = [list(cells) for cells in top.itertuples(index=False)]
        encoding, separator = None, None
    else:
        encoding, separator = _google_encoding(path)
        text = path.read_text(encoding=encoding).splitlines()[:5]
        lines = [line.split(separator) for line in text]
    header = next(
        (
            i
            for i, cells in enumerate(lines)
            if GOOGLE_HEADER_CELLS & {str(c).strip().strip('"').lower() for c in cells}
        ),
        0,
    )
    if encoding is None:
        return _read_table(path, skiprows=header), header + 2
    table = _read_table(path, encoding=encoding, sep=separator, skiprows=header)
    return table, header + 2


def _google_encoding(path: Path) -> tuple[str, str]:
    """Return the encoding and delimiter of a Google Ads CSV: UTF-16 and tabs
    after a UTF-16 byte-order mark ("Excel .csv"), else UTF-8 and commas."""
    with path.open("rb") as handle:
        start = handle.read(2)
    if start in (b"\xff\xfe", b"\xfe\xff"):
        return "utf-16", "\t"
    return "utf-8-sig", ","


def _map_variants(arms: pd.DataFrame, definition: dict, path: Path) -> pd.DataFrame:
    """Return `arms` with the file's labels mapped to variant ids, control first."""
    mapping = {
        str(k): str(v)
        for k, v in (definition["results"].get("variant_map") or {}).items()
    }
    arms = arms.assign(
        variant=arms["variant"].astype(str).map(lambda v: mapping.get(v, v))
    )
    arms = arms.groupby("variant", as_index=False, sort=False).sum()
    expected = definition["variant_ids"]
    unknown = sorted(set(arms["variant"]) - set(expected))
    if unknown:
        raise HeardInputError(
            path,
            column=definition["results"].get("variant_column"),
            expected=f"arms {expected}",
            found=unknown,
            fix="map the file's labels with results.variant_map",
        )
    missing = [v for v in expected if v not in set(arms["variant"])]
    if missing:
        raise HeardInputError(
            path,
            expected=f"results for every variant {expected}",
            found=f"no rows for {missing}",
            fix="a test needs the control and at least one arm with results",
        )
    return arms.set_index("variant").loc[expected].reset_index()
