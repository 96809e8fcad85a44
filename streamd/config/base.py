"""`FrozenModel`: the base of every config section, so each behaves the same way at load."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class FrozenModel(BaseModel):
    """A config section: immutable once loaded, unknown keys refused, field docstrings kept.

    The docstrings become field descriptions, which `streamd config example` prints.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)
