"""Statement text helpers: split a request into statements, find a header's `AS`, strip comments."""

from __future__ import annotations

import re
from typing import Any

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


def split_statements(text: str) -> list[str]:
    """Split on top-level `;`, keeping `BEGIN … END` blocks and `CASE … END` whole.

    Raises SqlglotError when the text cannot be tokenized (e.g. an unterminated string).
    """
    tokens = Tokenizer().tokenize(text)
    parts: list[str] = []
    depth, start = 0, 0
    for i, tok in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if (
            tok.token_type == TokenType.BEGIN and not _transaction_begin(nxt)
        ) or tok.token_type == TokenType.CASE:
            depth += 1
        elif tok.token_type == TokenType.END and depth > 0:
            depth -= 1
        elif tok.token_type == TokenType.SEMICOLON and depth == 0:
            parts.append(text[start : tok.start])
            start = tok.end + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if strip_comments(p).strip()]


def _transaction_begin(nxt: Any) -> bool:
    if nxt is None or nxt.token_type == TokenType.SEMICOLON:
        return True
    return str(nxt.text).upper() in ("TRANSACTION", "WORK", "NAME")


def strip_comments(text: str) -> str:
    """The statement text without leading whitespace and comments."""
    return _COMMENT_RE.sub("", text, count=1)


def short(text: str, limit: int = 120) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"
