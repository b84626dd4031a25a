"""Heard: customer-conversation research for e-commerce teams.

Importing the package is cheap: each research step lives in its own module
(`exports`, `phones`, `segments`, `calls`, `coding`, `language`, `experiments`)
and is imported where it is used.
"""

__version__ = "0.1.0"
