"""The demo study's codebook: hierarchical codes with stable ids.

Written once per study as ``codebook.yml``. The ids are the contract: coding
sheets, predictions, insights and experiments cite them.
"""

from __future__ import annotations

import yaml

CODEBOOK_VERSION = 3


def code(id_, name, definition, use_when, not_when, examples, keywords) -> dict:
    """Return one leaf code as the codebook stores it."""
    return {
        "id": id_,
        "name": name,
        "definition": definition,
        "use_when": use_when,
        "not_when": not_when,
        "examples": examples,
        "keywords": keywords,
    }


OBJECTIONS = [
    code(
        "OBJ-PRICE", "Price",
        "The customer says the price of the products held them back.",
        "They call the items expensive or compare the item price with other shops.",
        "The complaint is about shipping or fees added at checkout (OBJ-SHIP-COST).",
        ["it was just more than I wanted to spend", "too expensive for a jacket"],
        ["expensive", "pricey", "price", "afford", "spend", "cheaper"],
    ),
    code(
        "OBJ-SHIP-COST", "Shipping cost at checkout",
        "Shipping charges, or a total that jumped at checkout, put the customer off.",
        "They mention shipping cost, delivery fees or a surprise at the total.",
        "They worry about how long delivery takes (OBJ-DELIVERY).",
        ["the shipping cost at checkout surprised me", "I didn't want to pay shipping"],
        ["shipping cost", "pay for shipping", "free shipping", "total jumped", "fee"],
    ),
    code(
        "OBJ-DELIVERY", "Delivery time",
        "How long delivery takes, or uncertainty about the arrival date.",
        "They need the item by a date, or the delivery estimate was vague or slow.",
        "The issue is the price of shipping (OBJ-SHIP-COST).",
        ["I needed it before the trip", "delivery took almost two weeks"],
        ["delivery", "arrive", "in time", "days", "before the trip", "slow"],
    ),
    code(
        "OBJ-FIT", "Sizing and fit",
        "Doubt about which size to choose or how an item fits.",
        "They mention sizes, fit, being between sizes or the size chart.",
        "The doubt is about the returns process itself (OBJ-TRUST).",
        ["I wasn't sure about the sizing", "I'm between sizes"],
        ["size", "sizing", "fit", "between sizes", "size chart", "runs small"],
    ),
    code(
        "OBJ-TRUST", "Trust and returns",
        "The customer did not yet trust the store, or feared a hard return.",
        "They mention the returns policy, reviews, not knowing the brand, or scams.",
        "They only ask which size to pick (OBJ-FIT).",
        ["I couldn't find the returns policy", "never heard of you before"],
        ["returns policy", "free returns", "reviews", "trust", "legit", "refund"],
    ),
    code(
        "OBJ-PAYMENT", "Payment problems",
        "The payment step failed or lacked the customer's preferred method.",
        "A card was declined, a wallet or pay-later option was missing, or it froze.",
        "They simply decided not to pay the price (OBJ-PRICE).",
        ["my card kept getting declined", "I wanted to use PayPal"],
        ["card", "declined", "paypal", "apple pay", "payment", "afterpay"],
    ),
    code(
        "OBJ-STOCK", "Out of stock",
        "The size or colour the customer wanted was not available.",
        "They mention a sold-out size, colour or item.",
        "They could not decide between available sizes (OBJ-FIT).",
        ["my size was sold out"],
        ["sold out", "out of stock", "not available", "back in stock"],
    ),
]  # fmt: skip

INFORMATION = [
    code(
        "INFO-PRODUCT", "Product questions unanswered",
        "A question about the product was not answered on the page.",
        "They wanted specs, materials, waterproof ratings, weights or photos.",
        "The question is about size (OBJ-FIT) or delivery (OBJ-DELIVERY).",
        ["the page didn't say if it was waterproof", "I couldn't tell how warm it is"],
        ["waterproof", "material", "how warm", "specs", "weight", "photos", "question"],
    ),
    code(
        "DISC-CODE", "Discount-code hunting",
        "The customer left checkout to look for a discount code.",
        "They saw the code box, searched for a code or waited for a sale.",
        "The item price itself is the complaint (OBJ-PRICE).",
        ["I went looking for a code", "I saw the promo box and went searching"],
        ["discount code", "promo code", "coupon", "code box", "sale"],
    ),
]  # fmt: skip

POSITIVES = [
    code(
        "POS-QUALITY", "Product quality",
        "Praise for how the product is made or holds up.",
        "They describe the item as well made, warm, sturdy or worth it.",
        "Praise is for the service or the delivery (POS-SERVICE).",
        ["the jacket is really well made", "held up on a wet weekend"],
        ["well made", "quality", "sturdy", "warm", "held up", "love it"],
    ),
    code(
        "POS-SERVICE", "Helpful service",
        "Praise for staff, chat or e-mail replies.",
        "Someone from the store helped them, quickly or kindly.",
        "Praise is for the product itself (POS-QUALITY).",
        ["the chat answered me in minutes"],
        ["helpful", "quick reply", "chat", "customer service", "friendly"],
    ),
]  # fmt: skip

STAGES = [
    code(
        "STAGE-DISCOVER", "Discover",
        "How the customer first came across the store or the product.",
        "They mention a friend, social media, search, an ad or a review site.",
        "They are weighing options they already found (STAGE-COMPARE).",
        ["a friend posted a photo on Instagram"],
        ["found you", "instagram", "friend", "google", "ad", "saw"],
    ),
    code(
        "STAGE-COMPARE", "Compare",
        "Weighing the store's products against others before buying.",
        "They compared brands, shops, tabs, reviews or prices.",
        "They are already at checkout (STAGE-CHECKOUT).",
        ["I had a few tabs open comparing jackets"],
        ["compare", "comparing", "tabs", "other shops", "amazon", "rei"],
    ),
    code(
        "STAGE-CHECKOUT", "Checkout",
        "What happened in the cart or checkout pages.",
        "They talk about the cart, the total, the code box or paying.",
        "The order has already been placed (STAGE-DELIVERY).",
        ["when I got to checkout the total changed"],
        ["checkout", "cart", "total", "pay", "basket"],
    ),
    code(
        "STAGE-DELIVERY", "Delivery",
        "What happened after ordering: dispatch, tracking, arrival, unboxing.",
        "They describe waiting, tracking or receiving the parcel.",
        "They only worry about delivery before ordering (code OBJ-DELIVERY instead).",
        ["the parcel arrived a day early"],
        ["arrived", "tracking", "parcel", "package", "unboxing"],
    ),
]  # fmt: skip


def build_codebook() -> dict:
    """Return the demo codebook as a mapping ready for ``codebook.yml``.

    Returns
    -------
    dict
        ``version`` and ``codes``: four branches (``OBJ``, ``INFO``, ``POS``,
        ``STAGE``), each with ``children`` leaf codes carrying ``definition``,
        ``use_when``, ``not_when``, ``examples`` and ``keywords``.

    Notes
    -----
    ``OBJ-STOCK`` is defined but no demo conversation uses it, as in a real
    codebook that anticipated a problem customers never raised.
    """
    branch = {
        "OBJ": ("Objections", "What held the customer back from buying.", OBJECTIONS),
        "INFO": ("Information", "What the customer needed to know.", INFORMATION),
        "POS": ("Positives", "What the customer liked.", POSITIVES),
        "STAGE": ("Decision stages", "Where in the journey it happened.", STAGES),
    }
    codes = [
        {"id": id_, "name": name, "definition": text, "children": children}
        for id_, (name, text, children) in branch.items()
    ]
    return {"version": CODEBOOK_VERSION, "codes": codes}


def format_codebook(codebook: dict) -> str:
    """Return the codebook as YAML text, keys in the order written."""
    header = "# Demo Outdoor Co. codebook: ids are stable; change names, not ids.\n"
    return header + yaml.safe_dump(codebook, sort_keys=False, width=88)


def leaf_ids(codebook: dict) -> list[str]:
    """Return every leaf code id in codebook order."""
    return [child["id"] for branch in codebook["codes"] for child in branch["children"]]
