"""Tests for helpers.demo: the invented study every notebook runs on.

Fast tests check the store and its Shopify layout in memory. Tests marked slow
write the whole study (about a minute: step 01 plans each month's call list) and
measure its calibration from the files, with simple computations of their own.
"""

from __future__ import annotations

import filecmp
import re
from pathlib import Path

import numpy as np
import pandas as pd
import phonenumbers
import pytest
import yaml
from statsmodels.stats.proportion import proportions_ztest

from helpers.demo import build, shopify, world
from helpers.demo.codebook import build_codebook, leaf_ids

SHARED = Path(__file__).parents[2] / "shared" / "data"
US_FICTIONAL = re.compile(r"^\+1\d{3}55501\d{2}$")
UK_FICTIONAL = re.compile(r"^\+447700900\d{3}$")
MONTHS = ("2026-10", "2026-11")


@pytest.fixture(scope="module")
def store():
    return build.build_store(np.random.default_rng(7))


@pytest.fixture(scope="module")
def orders_export(store):
    orders = world.number_orders(store.order_drafts)
    people = {(p.number, p.email): p for p in store.people}
    return shopify.build_orders_export(
        orders, people, until=world.download_moment("2026-11")
    )


def parse_fictional(text: str, country: str) -> bool:
    """True when `text` parses to a number in a range reserved for fiction."""
    cleaned = text.lstrip("'")
    number = phonenumbers.parse(cleaned, country)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return bool(US_FICTIONAL.match(e164) or UK_FICTIONAL.match(e164))


# ------------------------------------------------------------------ fast checks


def test_orders_header_matches_the_real_shopify_export(orders_export):
    real = SHARED / "shopify-dev-orders" / "orders_export_1.csv"
    if not real.exists():
        pytest.skip("shared Shopify sample not available")
    header = pd.read_csv(real, nrows=0).columns.tolist()
    assert len(header) == 79
    assert orders_export.columns.tolist() == header


def test_orders_have_one_row_per_line_item(orders_export, store):
    # Order fields sit on an order's first row only; every row names its order.
    n_orders = orders_export["Name"].nunique()
    firsts = orders_export[orders_export["Financial Status"] != ""]
    assert len(orders_export) > n_orders
    assert len(firsts) == n_orders
    assert not firsts["Name"].duplicated().any()
    rows_per_order = orders_export.groupby("Name").size()
    assert rows_per_order.max() > 1
    expected = world.number_orders(store.order_drafts)
    items = {o.name: len(o.items) for o in expected}
    assert rows_per_order.to_dict() == {
        k: v for k, v in items.items() if k in rows_per_order
    }


def test_created_at_offsets_change_at_the_dst_switch(orders_export):
    stamps = orders_export["Created at"]
    late_october = stamps[stamps.str.startswith("2026-10-2")]
    mid_november = stamps[stamps.str.startswith("2026-11-1")]
    assert late_october.str.endswith("-0400").all() and len(late_october)
    assert mid_november.str.endswith("-0500").all() and len(mid_november)


def test_planted_flaws_are_present(orders_export, store):
    totals = pd.to_numeric(orders_export["Total"], errors="coerce")
    assert (totals < 0).sum() == 1
    dates = pd.to_datetime(
        orders_export["Created at"],
        format="%Y-%m-%d %H:%M:%S %z",
        errors="coerce",
        utc=True,
    )
    assert len(set(orders_export.loc[dates.isna(), "Name"])) == 1
    assert (orders_export["Billing Phone"] == "1.20256E+10").sum() == 1
    customers = shopify.build_customers_export(
        store.people, [], until=world.download_moment("2026-11"),
        mangled_phone=store.mangled_phone,
    )  # fmt: skip
    assert (customers["Default Address Phone"] == "1.20256E+10").sum() == 1
    # Duplicates: the same e-mail under another Customer ID, letters cased apart.
    folded = customers["Email"].str.casefold()
    doubled = customers[folded.duplicated(keep=False) & (folded != "")]
    assert len(doubled) >= 2 * 10
    assert (doubled.groupby(folded)["Email"].nunique() == 2).all()


def test_every_personal_detail_is_fictional(store, orders_export):
    customers = shopify.build_customers_export(
        store.people, [], until=world.download_moment("2026-11")
    )
    emails = pd.concat([customers["Email"], orders_export["Email"]])
    emails = emails[emails != ""]
    assert emails.str.casefold().str.fullmatch(r"customer\d+@example\.com").all()
    names = customers["First Name"] + " " + customers["Last Name"]
    assert names.str.fullmatch(r"Customer \d+").all()
    phones = customers[["Default Address Phone", "Default Address Country Code"]]
    typed = phones[phones.iloc[:, 0] != ""]
    assert len(typed) > 1000
    assert all(parse_fictional(t, c) for t, c in typed.itertuples(index=False))
    # Formats really are mixed: several distinct shapes of the digits.
    shapes = typed.iloc[:, 0].str.replace(r"\d", "9", regex=True).nunique()
    assert shapes >= 8


def test_do_not_call_numbers_are_fictional_and_mixed(store):
    listed = store.do_not_call["phone"]
    assert len(listed) >= 4
    assert all(parse_fictional(p, "US") for p in listed)
    assert listed.str.replace(r"\d", "9", regex=True).nunique() >= 4


def test_codebook_has_stage_branch_and_complete_codes():
    codebook = build_codebook()
    ids = leaf_ids(codebook)
    assert len(ids) == len(set(ids))
    assert {"OBJ-PRICE", "OBJ-SHIP-COST", "STAGE-DISCOVER", "STAGE-DELIVERY"} <= set(
        ids
    )
    for branch in codebook["codes"]:
        for code in branch["children"]:
            assert code["definition"] and code["use_when"] and code["not_when"]
            assert code["examples"] and code["keywords"]


def test_existing_demo_is_left_alone_without_force(tmp_path):
    from helpers.demo import write_demo_study

    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "study.yml").write_text("mine: true\n")
    assert write_demo_study(folder) == folder
    assert (folder / "study.yml").read_text() == "mine: true\n"


# ------------------------------------------------------------- the whole study


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    # The session's key (conftest), set here too: this fixture outlives one test.
    key_file = tmp_path_factory.getbasetemp() / "pseudonym.key"
    folder = tmp_path_factory.mktemp("first") / "demo"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HEARD_KEY_FILE", str(key_file))
        months = build.build_demo_study(folder, seed=11)
    return folder, months


def read_call_log(folder: Path, month: str) -> pd.DataFrame:
    return pd.read_excel(folder / "calls" / month / "call-log.xlsx", dtype=str)


def read_front_matter(path: Path) -> dict:
    return yaml.safe_load(path.read_text("utf-8").split("---")[1])


@pytest.mark.slow
def test_same_seed_writes_identical_files(written, tmp_path):
    first, _ = written
    second = tmp_path / "demo"
    build.build_demo_study(second, seed=11)
    mine = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    theirs = sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert mine == theirs
    # XLSX files carry a creation time inside; compare their cells instead.
    for relative in mine:
        if relative.suffix == ".xlsx":
            a = pd.read_excel(first / relative, dtype=str)
            b = pd.read_excel(second / relative, dtype=str)
            pd.testing.assert_frame_equal(a, b)
        else:
            assert filecmp.cmp(first / relative, second / relative, shallow=False), (
                relative
            )


@pytest.mark.slow
@pytest.mark.parametrize("month", MONTHS)
def test_connect_rate_per_customer_is_in_the_field_range(written, month):
    folder, _ = written
    calls = read_call_log(folder, month)
    outcomes = calls.groupby("customer_key")["outcome"].agg(set)
    talked = outcomes.map(lambda seen: "connected" in seen)
    assert 0.30 <= talked.mean() <= 0.40
    # Counting every live answer (a refusal too) must stay in the range as well.
    live = {"connected", "declined", "do_not_call", "callback_requested"}
    answered = outcomes.map(lambda seen: bool(seen & live))
    assert 0.30 <= answered.mean() <= 0.40
    assert set(calls["outcome"]) <= {
        "connected", "voicemail", "no_answer", "busy", "wrong_number", "declined",
        "callback_requested", "do_not_call",
    }  # fmt: skip
    assert (calls["outcome"] == "do_not_call").sum() in (1, 2)
    assert calls.groupby("customer_key").size().between(1, 4).all()


@pytest.mark.slow
def test_conversation_notes_count_and_front_matter(written):
    folder, _ = written
    notes = sorted((folder / "conversations" / "2026-11").glob("*.md"))
    assert 24 <= len(notes) <= 30
    october = list((folder / "conversations" / "2026-10").glob("*.md"))
    assert 18 <= len(october) <= 26
    fronts = [read_front_matter(p) for p in notes]
    assert {f["segment"] for f in fronts} == {"cart_abandoners", "first_time_no_return"}
    assert any(f["consent_to_quote"] is False for f in fronts)
    # One note per connected call, named in the call log.
    calls = read_call_log(folder, "2026-11")
    named = set(calls.loc[calls["outcome"] == "connected", "notes_file"])
    assert named == {p.name for p in notes}


def read_placed_orders(folder: Path) -> pd.DataFrame:
    """Return ``customer_key``, ``created_at`` (UTC) of every order with an e-mail."""
    from helpers.privacy import customer_key

    path = folder / "exports" / "2026-11" / "orders_export_1.csv"
    orders = pd.read_csv(path, dtype=str)
    orders = orders[orders["Financial Status"].notna() & orders["Email"].notna()]
    created = pd.to_datetime(
        orders["Created at"], format="%Y-%m-%d %H:%M:%S %z", errors="coerce", utc=True
    )
    keys = [customer_key(email.strip().casefold()) for email in orders["Email"]]
    return pd.DataFrame({"customer_key": keys, "created_at": created.to_numpy()})


@pytest.mark.slow
def test_price_is_cited_by_about_one_non_buyer_in_nine(written):
    # A non-buyer: a customer talked to who placed no order that (UTC) month.
    folder, _ = written
    placed = read_placed_orders(folder)
    month_of = placed["created_at"].dt.strftime("%Y-%m")
    cited, non_buyers = 0, 0
    for month in MONTHS:
        fronts = [
            read_front_matter(p)
            for p in (folder / "conversations" / month).glob("*.md")
        ]
        buyers = set(placed.loc[month_of == month, "customer_key"])
        silent = {
            f["conversation_id"] for f in fronts if f["customer_key"] not in buyers
        }
        sheets = [
            pd.read_excel(p, dtype=str)
            for p in (folder / "coding" / month).glob("*.xlsx")
        ]
        codes = pd.concat(sheets)
        has_price = codes[["code_1", "code_2", "code_3"]].eq("OBJ-PRICE").any(axis=1)
        priced = set(codes.loc[has_price, "conversation_id"])
        assert priced <= silent
        non_buyers += len(silent)
        cited += len(priced & silent)
    assert abs(cited / non_buyers - 1 / 9) <= 0.04


@pytest.mark.slow
def test_called_abandoners_recover_more_than_the_holdout(written):
    folder, months = written
    placed = read_placed_orders(folder)
    window = pd.Timedelta(days=14)
    rates = {"called": [], "holdout": []}
    for month in MONTHS:
        calls = read_call_log(folder, month)
        first = (
            pd.to_datetime(calls["attempted_at"], utc=True)
            .groupby(calls["customer_key"])
            .min()
        )
        plan = months[month].call_list
        abandoners = plan[plan["segment"] == "cart_abandoners"]
        median = first.reindex(
            abandoners.loc[abandoners["arm"] == "called", "customer_key"]
        ).median()
        for key, arm in abandoners[["customer_key", "arm"]].itertuples(index=False):
            start = first.get(key, median) if arm == "called" else median
            mine = placed[placed["customer_key"] == key]["created_at"]
            rates[arm].append(bool(((mine > start) & (mine <= start + window)).any()))
    called, holdout = np.mean(rates["called"]), np.mean(rates["holdout"])
    assert called >= holdout + 0.08
    assert 0.03 <= holdout <= 0.2


@pytest.mark.slow
@pytest.mark.parametrize("month", MONTHS)
def test_coders_agree_about_as_well_as_trained_coders(written, month):
    folder, _ = written
    codes = leaf_ids(build_codebook())
    sheets = {
        coder: pd.read_excel(folder / "coding" / month / f"{coder}.xlsx", dtype=str)
        for coder in ("Sam", "Rita")
    }
    assert sheets["Sam"]["excerpt_id"].tolist() == sheets["Rita"]["excerpt_id"].tolist()
    customer = sheets["Sam"]["speaker"] == "customer"

    # Cohen's kappa on "excerpt carries code", pooled over customer excerpts x codes.
    def presence(sheet):
        given = sheet.loc[customer, ["code_1", "code_2", "code_3"]]
        return np.array([[code in set(row) for code in codes] for row in given.values])

    sam, rita = presence(sheets["Sam"]).ravel(), presence(sheets["Rita"]).ravel()
    observed = np.mean(sam == rita)
    chance = sam.mean() * rita.mean() + (1 - sam.mean()) * (1 - rita.mean())
    kappa = (observed - chance) / (1 - chance)
    assert 0.65 <= kappa <= 0.9
    assert (sam != rita).sum() >= 3
    used = set(np.array(codes)[presence(sheets["Sam"]).any(axis=0)])
    assert "OBJ-STOCK" not in used


@pytest.mark.slow
@pytest.mark.parametrize("month", MONTHS)
def test_coders_hand_back_finished_sheets(written, month, caplog):
    from helpers.codebook import load_codebook
    from helpers.coding import NO_CODE, read_coding_sheet

    folder, _ = written
    codebook = load_codebook(folder / "codebook.yml")
    for coder in ("Sam", "Rita"):
        path = folder / "coding" / month / f"{coder}.xlsx"
        sheet = pd.read_excel(path, dtype=str)
        customer = sheet["speaker"] == "customer"
        # Every customer line carries a code or "no code"; interviewer lines stay blank.
        assert sheet.loc[customer, "code_1"].notna().all()
        assert sheet.loc[~customer, "code_1"].isna().all()
        assert (sheet["code_1"] == NO_CODE).any()
        caplog.clear()
        codings = read_coding_sheet(path, codebook)
        assert "not yet coded" not in caplog.text
        assert codings["excerpt_id"].nunique() == customer.sum()


@pytest.mark.slow
@pytest.mark.parametrize("month", MONTHS)
def test_coders_settle_most_disagreements(written, month):
    from helpers import coding
    from helpers.codebook import load_codebook

    folder, _ = written
    codebook = load_codebook(folder / "codebook.yml")
    codings = coding.read_coding_sheets(folder / "coding" / month, codebook)
    sheet = folder / "coding" / month / coding.RECONCILED_SHEET
    resolutions = coding.read_resolutions(sheet, codebook)
    queue = coding.disagreement_queue(codings, resolutions=resolutions)

    # Every disagreement step 03 finds is on the sheet; October's are all settled.
    listed = pd.read_excel(sheet, dtype=str)
    assert set(zip(listed["excerpt_id"], listed["code"], strict=True)) == set(
        zip(queue["excerpt_id"], queue["code"], strict=True)
    )
    open_share = queue["decision"].isna().mean()
    assert open_share == 0 if month == "2026-10" else 0 < open_share < 0.4
    assert set(resolutions["decision"]) == {"keep", "drop"}


@pytest.mark.slow
def test_experiments_cite_quotes_that_exist(written):
    folder, _ = written
    from helpers.coding import read_conversations, split_excerpts

    for month, name in (
        ("2026-10", "subject-line-oct"),
        ("2026-11", "subject-line-nov"),
    ):
        definition = yaml.safe_load(
            (folder / "experiments" / name / "experiment.yml").read_text()
        )
        quoted = [q for v in definition["variants"] for q in v["quote_ids"]]
        assert quoted
        excerpts = split_excerpts(read_conversations(folder / "conversations" / month))
        known = {f"q-{e}" for e in excerpts.loc[excerpts["is_customer"], "excerpt_id"]}
        assert set(quoted) <= known
        # Each quote: a consenting customer, and one code both coders gave it.
        agreed = consensus_codes(folder, month)
        for quote_id in quoted:
            excerpt_id = quote_id.removeprefix("q-")
            note = folder / "conversations" / month / f"{excerpt_id[:10]}.md"
            assert read_front_matter(note)["consent_to_quote"] is True
            assert len(agreed[agreed["excerpt_id"] == excerpt_id]) >= 1
        results = pd.read_csv(folder / "experiments" / name / "results.csv")
        if definition["results"]["kind"] == "rows":
            results = (
                results.groupby("variant")
                .agg(n=("recipient_id", "size"), conversions=("converted", "sum"))
                .reset_index()
            )
        arms = results.set_index("variant")
        variant = next(v for v in arms.index if v != "control")
        assert arms["n"].min() >= 1000
        _, p_value = proportions_ztest(
            arms.loc[[variant, "control"], "conversions"],
            arms.loc[[variant, "control"], "n"],
            alternative="larger",
        )
        lift = (
            arms.loc[variant, "conversions"] / arms.loc[variant, "n"]
            - arms.loc["control", "conversions"] / arms.loc["control", "n"]
        )
        assert lift > 0.005 and p_value < 0.05


@pytest.mark.slow
def test_step_01_redraws_the_call_list_the_calls_used(written, tmp_path):
    from helpers.demo.calling import plan_month

    folder, months = written
    processed = tmp_path / "processed"
    for month in MONTHS:
        again = plan_month(folder, month, processed=processed)
        pd.testing.assert_frame_equal(again, months[month].call_list)


def coded_pairs(folder: Path, month: str, *, agreed: bool = True) -> pd.DataFrame:
    """Return ``conversation_id``, ``excerpt_id``, ``code`` rows that both coders
    gave (`agreed`) or that either gave."""
    pairs = []
    for coder in ("Sam", "Rita"):
        sheet = pd.read_excel(folder / "coding" / month / f"{coder}.xlsx", dtype=str)
        long = sheet.melt(
            id_vars=["conversation_id", "excerpt_id"],
            value_vars=["code_1", "code_2", "code_3"],
            value_name="code",
        ).dropna(subset=["code"])
        columns = (long["conversation_id"], long["excerpt_id"], long["code"])
        pairs.append(set(zip(*columns, strict=True)))
    kept = pairs[0] & pairs[1] if agreed else pairs[0] | pairs[1]
    return pd.DataFrame(sorted(kept), columns=["conversation_id", "excerpt_id", "code"])


def consensus_codes(folder: Path, month: str) -> pd.DataFrame:
    """Return the codes both coders gave each excerpt."""
    return coded_pairs(folder, month, agreed=True)


@pytest.mark.slow
@pytest.mark.parametrize("month", MONTHS)
def test_themes_saturate_within_each_segment(written, month):
    # As step 03 judges it: the last three conversations, of the month and of each
    # segment, add no code both coders agreed on that was not agreed on before.
    folder, _ = written
    segments = {
        path.stem: read_front_matter(path)["segment"]
        for path in (folder / "conversations" / month).glob("*.md")
    }
    agreed = consensus_codes(folder, month)
    agreed = agreed[~agreed["code"].str.startswith("STAGE-")]
    runs = {"all": sorted(segments)}
    runs |= {
        s: sorted(c for c in segments if segments[c] == s) for s in segments.values()
    }
    for name, order in runs.items():
        before = set(agreed.loc[agreed["conversation_id"].isin(order[:-3]), "code"])
        late = set(agreed.loc[agreed["conversation_id"].isin(order[-3:]), "code"])
        assert late <= before, name


@pytest.mark.slow
def test_two_notes_a_month_leak_a_fictional_phone_or_email(written):
    from helpers.privacy import find_pii

    folder, _ = written
    for month in MONTHS:
        leaks = []
        for path in (folder / "conversations" / month).glob("*.md"):
            body = path.read_text("utf-8").split("---", 2)[2]
            leaks += find_pii(body)
        assert len(leaks) == 2
        for leak in leaks:
            if "@" in leak:
                assert re.fullmatch(r"customer\d+@example\.com", leak)
            else:
                assert parse_fictional(leak, "US")


@pytest.mark.slow
def test_writing_the_demo_leaves_its_rejected_rows_to_heard_check(tmp_path, caplog):
    import logging

    from helpers.demo import write_demo_study

    with caplog.at_level(logging.WARNING):
        write_demo_study(tmp_path / "demo")
    assert "rejected" not in caplog.text
    assert logging.getLogger("helpers.exports").level == logging.NOTSET


def test_a_phrase_whose_second_codes_are_all_unheard_is_said_with_its_theme_alone():
    from helpers.demo.notes import pick_phrase

    options = ["I compared it on {item} | STAGE-COMPARE", "Saw it on {item} | STAGE-X"]
    text, codes = pick_phrase(
        options, "OBJ-PRICE", "boots", np.random.default_rng(0), allowed={"OBJ-PRICE"}
    )
    assert codes == ("OBJ-PRICE",)
    assert text in {"I compared it on boots", "Saw it on boots"}
