"""The one Struct base of the wire contract.

Every request, response and record derives from `Base`: keyword-only fields (so defaults may sit
anywhere), and unknown fields rejected at decode time. Validation happens once, when a transport or
config reader decodes with msgspec; nothing re-checks inside the core.
"""

from __future__ import annotations

import msgspec


class Base(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of every wire type: keyword-only, unknown fields rejected."""
