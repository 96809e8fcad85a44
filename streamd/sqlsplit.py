"""Split a Snowflake SQL script into statements, the way Snowflake's own clients do.

A `;` ends a statement only outside string literals (`'…'` with `''` or `\\'` escapes), quoted
identifiers, comments (`--`, `//`, `/* */`), `$$ … $$` blocks, and Snowflake Scripting blocks
(`[DECLARE …] BEGIN … END`, with nested `IF/FOR/LOOP/WHILE/REPEAT/CASE … END …`), so a task body
`AS BEGIN …; …; END;` stays one statement. `BEGIN;`, `BEGIN TRANSACTION` and `BEGIN WORK` are
transaction statements, not blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

_BLOCK_OPENERS = {"IF", "FOR", "LOOP", "WHILE", "REPEAT", "CASE"}
_TRANSACTION_WORDS = {"TRANSACTION", "WORK", "NAME"}


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement without its terminating `;`; `line` is where its first token is (1-based)."""

    text: str
    line: int


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "word", "semi", "other" (strings, comments, punctuation never reach the walker)
    value: str
    start: int


class SplitError(ValueError):
    """The script ends inside a string, comment, `$$` block or BEGIN … END block."""


def split_statements(script: str) -> list[Statement]:
    """The statements of `script` in order; statements holding only comments are dropped."""
    tokens = _tokenize(script)
    statements: list[Statement] = []
    stack: list[str] = []
    declare = False
    first: int | None = None
    words_in_statement = 0
    for i, tok in enumerate(tokens):
        if tok.kind == "semi":
            if not stack and not declare:
                if first is not None:
                    statements.append(_statement(script, first, tok.start))
                first, words_in_statement = None, 0
            continue
        if first is None:
            first = tok.start
        if tok.kind != "word":
            continue
        word = tok.value.upper()
        nxt = _next_word(tokens, i)
        words_in_statement += 1
        if word == "DECLARE" and words_in_statement == 1:
            declare = True  # DECLARE …; …; BEGIN … END is one block
        elif word == "BEGIN" and _opens_block(tokens, i):
            stack.append("BEGIN")
            declare = False
        elif word == "END":
            closing = nxt.upper() if nxt is not None else ""
            if closing in _BLOCK_OPENERS and closing in stack:
                while stack and stack.pop() != closing:
                    pass
            elif stack:
                stack.pop()
        elif word in _BLOCK_OPENERS and _opens_nested(word, tokens, i, stack):
            stack.append(word)
    if stack or declare:
        raise SplitError("the script ends inside a BEGIN … END block (missing END?)")
    if first is not None:
        statements.append(_statement(script, first, len(script)))
    return statements


def _statement(script: str, start: int, end: int) -> Statement:
    return Statement(script[start:end].strip(), script.count("\n", 0, start) + 1)


def _next_word(tokens: list[_Token], i: int) -> str | None:
    j = i + 1
    if j < len(tokens) and tokens[j].kind == "word":
        return tokens[j].value
    return None


def _opens_block(tokens: list[_Token], i: int) -> bool:
    nxt = tokens[i + 1] if i + 1 < len(tokens) else None
    if nxt is None or nxt.kind == "semi":
        return False  # `BEGIN;` starts a transaction
    return not (nxt.kind == "word" and nxt.value.upper() in _TRANSACTION_WORDS)


def _opens_nested(word: str, tokens: list[_Token], i: int, stack: list[str]) -> bool:
    prev = tokens[i - 1].value.upper() if i > 0 and tokens[i - 1].kind == "word" else ""
    if prev == "END":
        return False  # the IF of `END IF`
    if word == "CASE":
        return True  # CASE … END, in SQL as in scripting
    if not stack:
        return False  # outside a block these words are SQL (`IF NOT EXISTS`, `FOR UPDATE`)
    nxt = _next_word(tokens, i)
    return not (word == "IF" and nxt is not None and nxt.upper() in ("NOT", "EXISTS"))


def _tokenize(script: str) -> list[_Token]:
    """Words and semicolons outside strings, identifiers, comments and `$$` blocks."""
    tokens: list[_Token] = []
    n = len(script)
    i = 0
    while i < n:
        c = script[i]
        if c in " \t\r\n":
            i += 1
        elif c == "'":
            tokens.append(_Token("other", "'", i))
            i = _skip_string(script, i)
        elif c == '"':
            end = script.find('"', i + 1)
            while end != -1 and script.startswith('""', end):
                end = script.find('"', end + 2)
            if end == -1:
                raise SplitError(f"unterminated quoted identifier at line {_line(script, i)}")
            tokens.append(_Token("other", '"', i))
            i = end + 1
        elif script.startswith("$$", i):
            end = script.find("$$", i + 2)
            if end == -1:
                raise SplitError(f"unterminated $$ block at line {_line(script, i)}")
            tokens.append(_Token("other", "$$", i))
            i = end + 2
        elif script.startswith(("--", "//"), i):
            end = script.find("\n", i)
            i = n if end == -1 else end + 1
        elif script.startswith("/*", i):
            end = script.find("*/", i + 2)
            if end == -1:
                raise SplitError(f"unterminated /* comment at line {_line(script, i)}")
            i = end + 2
        elif c == ";":
            tokens.append(_Token("semi", ";", i))
            i += 1
        elif c.isalpha() or c == "_":
            j = i + 1
            while j < n and (script[j].isalnum() or script[j] in "_$"):
                j += 1
            tokens.append(_Token("word", script[i:j], i))
            i = j
        else:
            tokens.append(_Token("other", c, i))
            i += 1
    return tokens


def _skip_string(script: str, i: int) -> int:
    """The index just past the string literal opening at `i`."""
    j = i + 1
    n = len(script)
    while j < n:
        c = script[j]
        if c == "\\":
            j += 2
        elif c == "'":
            if script.startswith("''", j):
                j += 2
            else:
                return j + 1
        else:
            j += 1
    raise SplitError(f"unterminated string literal at line {_line(script, i)}")


def _line(script: str, position: int) -> int:
    return script.count("\n", 0, position) + 1
