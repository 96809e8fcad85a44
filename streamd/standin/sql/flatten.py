"""`LATERAL FLATTEN(INPUT => <array>) f` for DuckDB, which raw sqlglot translates to invalid SQL
(local-target-notes §5.2).

Rewritten to `LATERAL (SELECT value, ordinality - 1 AS INDEX, <array> AS THIS FROM
UNNEST(CAST(<array> AS JSON[])) WITH ORDINALITY)`, so `f.VALUE:field::TYPE` and `f.INDEX` work
as on Snowflake. Only arrays, and only the INPUT argument: PATH, OUTER, RECURSIVE and MODE are
refused, and KEY/PATH/SEQ columns fail to bind, rather than being approximated.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from streamd.standin.sql.engine import Session, SqlEngine, unsupported

_TEMPLATE = (
    "SELECT * FROM _t, LATERAL (SELECT _u._v AS VALUE, _u._i - 1 AS INDEX, _in AS THIS "
    "FROM UNNEST(CAST(_in AS JSON[])) WITH ORDINALITY AS _u(_v, _i)) AS _f"
)


def register(engine: SqlEngine) -> None:
    """Install the FLATTEN rewriter."""
    engine.register_rewriter(rewrite)


def rewrite(session: Session, expr: exp.Expr, consume: bool) -> exp.Expr:
    """Replace every `LATERAL FLATTEN(...)` of `expr` with its DuckDB form."""
    del session, consume
    for lateral in list(expr.find_all(exp.Lateral)):
        if isinstance(lateral.this, exp.Explode):
            lateral.replace(_duckdb_lateral(lateral))
    return expr


def _duckdb_lateral(lateral: exp.Lateral) -> exp.Expr:
    explode = lateral.this
    args = explode.this if isinstance(explode.this, exp.Kwarg) else None
    source: exp.Expr | None = explode.this
    if args is not None:
        if args.this.name.upper() != "INPUT":
            raise unsupported(f"FLATTEN argument {args.this.name} in the stand-in (only INPUT)")
        source = args.expression
    if explode.expressions or source is None:
        raise unsupported("FLATTEN with PATH, OUTER, RECURSIVE or MODE in the stand-in")
    template = sqlglot.parse_one(_TEMPLATE, read="duckdb")
    replacement: exp.Expr = template.args["joins"][0].this.copy()
    for column in list(replacement.find_all(exp.Column)):
        if column.name == "_in" and not column.table:
            column.replace(source.copy())
    alias = lateral.args.get("alias")
    name = alias.this.name if isinstance(alias, exp.TableAlias) and alias.this else "f"
    replacement.set("alias", exp.TableAlias(this=exp.to_identifier(name)))
    return replacement
