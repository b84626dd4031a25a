# ruff: noqa: E501 - customer sentences are kept whole on one line, as said.
"""What the demo's customers say: phrase templates per code, in their own words.

Each theme has several ways of saying the same thing, and some phrases recur word
for word across customers ("the shipping cost at checkout", "between sizes", "free
returns"), as they do in real interviews. ``{item}`` is filled with something the
customer looked at. Only OBJ-PRICE phrases talk about the price of the products.
"""

from __future__ import annotations

# code -> phrases; a phrase may carry a second code after " | ".
THEMES = {
    "OBJ-SHIP-COST": [
        "Honestly the shipping cost at checkout. The {item} looked fine until the total jumped. | STAGE-CHECKOUT",
        "I didn't want to pay for shipping on top of everything, so I closed the tab.",
        "The shipping cost at checkout put me off, I wasn't expecting a fee that big.",
        "I got to the last page and the total jumped with shipping. That was it for me. | STAGE-CHECKOUT",
        "Free shipping would have done it. I didn't want to pay for shipping on one {item}.",
        "It was the shipping cost at checkout, it felt like a surprise at the very end. | STAGE-CHECKOUT",
    ],
    "OBJ-DELIVERY": [
        "I needed it before the trip and the delivery estimate said up to ten days.",
        "I couldn't tell when it would arrive. I needed it before the trip.",
        "Delivery time mostly. Other places said two days, yours just said 'ships soon'.",
        "I wasn't sure it would arrive in time for the weekend, so I waited.",
        "The delivery took almost two weeks last time, so I was wary. | STAGE-DELIVERY",
    ],
    "OBJ-FIT": [
        "I wasn't sure about the sizing. I'm between sizes and there was no size chart I trusted.",
        "Sizing, mainly. I'm between sizes and didn't know if the {item} runs small.",
        "I couldn't work out the fit from the photos, and I hate sending things back.",
        "I wasn't sure about the sizing so I left it in the cart to think. | STAGE-CHECKOUT",
        "The fit worried me, I've been burned by boots that run small before.",
    ],
    "OBJ-TRUST": [
        "I'd never heard of you before and I couldn't find the returns policy.",
        "I wanted free returns, and I couldn't tell if returns were free.",
        "There weren't many reviews yet, so I wasn't sure you were legit.",
        "I couldn't find the returns policy anywhere, that made me nervous.",
        "If I'd known about free returns I'd have just ordered it.",
    ],
    "OBJ-PRICE": [
        "It was just more than I wanted to spend on a {item} right now.",
        "Honestly it was too expensive for me, I found a cheaper one.",
        "The price. I liked it but I couldn't justify spending that much.",
    ],
    "OBJ-PAYMENT": [
        "My card kept getting declined and I gave up after the third try. | STAGE-CHECKOUT",
        "I wanted to use PayPal and it wasn't there. | STAGE-CHECKOUT",
        "The payment page froze on my phone, so I thought I'd try later. | STAGE-CHECKOUT",
    ],
    "INFO-PRODUCT": [
        "The page didn't say if the {item} was waterproof or just water resistant.",
        "I had a question about the material and nobody answered the chat.",
        "I couldn't tell how warm it is. There's no temperature rating on the page.",
        "I wanted more photos of the {item}, and the weight wasn't listed.",
    ],
    "DISC-CODE": [
        "I saw the discount code box and went looking for a code. Then I got distracted.",
        "I always look for a promo code first. I didn't find one and forgot about it.",
        "I was waiting for a sale, there's usually one around the holidays.",
        "I saw the code box and went searching for a coupon, never came back. | STAGE-CHECKOUT",
    ],
    "POS-QUALITY": [
        "The {item} is really well made, it held up on a wet weekend.",
        "Quality was great, honestly better than I expected for the money.",
        "I love it, it's warm and it feels sturdy.",
    ],
    "POS-SERVICE": [
        "Your chat answered me in minutes, that was really helpful.",
        "Customer service was friendly when I asked about an exchange.",
    ],
}

STAGE_TALK = {
    "STAGE-DISCOVER": [
        "I found you through a friend's photo on Instagram.",
        "I saw an ad for the {item} and clicked through.",
        "I was searching on Google for a {item} and you came up.",
        "A friend recommended you after a camping trip.",
    ],
    "STAGE-COMPARE": [
        "I had a few tabs open comparing the {item} with other shops.",
        "I was comparing you with REI and Amazon for a while.",
        "I compared reviews for about a week before I picked one.",
    ],
    "STAGE-DELIVERY": [
        "The parcel arrived a day early and the tracking was clear.",
        "The package arrived fine, but the tracking didn't update for days.",
        "It arrived on time, the unboxing was nice actually.",
    ],
}

PROBES = [
    "Can you tell me more about that?",
    "What happened just before that?",
    "What did you do next?",
    "How did that make you feel about ordering?",
    "Was there anything else that gave you pause?",
]
OPENERS = {
    "cart_abandoners": "And how did you come across us in the first place?",
    "first_time_no_return": "Thinking back to your first order, how did you find us?",
}
CLOSING_QUESTION = "Is there anything else you'd like us to know?"
CLOSINGS = [
    "No, that's about it. Thanks for calling.",
    "Not really, it was nice to be asked.",
    "Just that a quick answer would have helped.",
    "I think that covers it.",
]
PII_CLOSINGS = [
    "If you find out, you can text me back on {phone}.",
    "Send me the returns details at {email}, please.",
]
RECOVERED_CLOSING = "You know what, I think I'll go back and order it tonight."
SHORT_ITEMS = {
    "Ridgeline Rain Jacket": "rain jacket", "Trailhead Hiking Boots": "pair of boots",
    "Merino Base Layer Top": "base layer", "Down Puffer Vest": "vest",
    "Summit 45L Backpack": "backpack", "Daypack 20L": "daypack",
    "Wool Hiking Socks (3 pack)": "pack of socks", "Insulated Water Bottle": "bottle",
    "Two-Person Dome Tent": "tent", "Trekking Poles (pair)": "pair of poles",
    "Fleece Quarter Zip": "fleece", "Packable Sun Hat": "sun hat",
    "Camp Stove Kit": "stove", "Headlamp 300": "headlamp",
    "Softshell Trail Pants": "pair of trail pants",
}  # fmt: skip

# Theme weights per segment (price is allotted separately, by count).
WEIGHTS = {
    "cart_abandoners": {
        "OBJ-SHIP-COST": 0.30, "OBJ-DELIVERY": 0.13, "OBJ-FIT": 0.15,
        "OBJ-TRUST": 0.12, "INFO-PRODUCT": 0.10, "OBJ-PAYMENT": 0.07,
        "DISC-CODE": 0.13,
    },
    "first_time_no_return": {
        "OBJ-DELIVERY": 0.24, "OBJ-FIT": 0.20, "OBJ-TRUST": 0.18,
        "OBJ-SHIP-COST": 0.18, "INFO-PRODUCT": 0.08, "DISC-CODE": 0.12,
    },
}  # fmt: skip
