"""Statement text helpers: find a header's `AS`, strip leading comments, shorten for messages.

Splitting a request into statements is `streamd/sqlsplit.py`, shared with the client.
"""

from __future__ import annotations

import re

from sqlglot.errors import SqlglotError
from sqlglot.tokenizer_core import TokenType
from sqlglot.tokens import Tokenizer

_COMMENT_RE = re.compile(r"^\s*(?:(?:--|//)[^\n]*\n|/\*.*?\*/|\s)*", re.S)


def split_top_level_as(text: str) -> tuple[str, str] | None:
    """(header, body) around the first top-level `AS` keyword (CREATE TASK / DYNAMIC TABLE)."""
    try:
        tokens = Tokenizer().tokenize(text)
    except SqlglotError:
        return None
    depth = 0
    for tok in tokens:
        if tok.token_type == TokenType.L_PAREN:
            depth += 1
        elif tok.token_type == TokenType.R_PAREN:
            depth -= 1
        elif tok.token_type == TokenType.ALIAS and depth == 0:
            return text[: tok.start], text[tok.end + 1 :].strip()
    return None


def strip_comments(text: str) -> str:
    """The statement text without leading whitespace and comments."""
    return _COMMENT_RE.sub("", text, count=1)


def short(text: str, limit: int = 120) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis."""
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"
