"""The hub's matching library: standardization and strong keys (pure, no I/O).

Field-level standardizers live in `matching.standardize`.
"""

from matching.records import Issue, StandardizedRecord, standardize_record, strong_keys
from matching.standardize import company_key
from matching.text import fold

__all__ = [
    "Issue",
    "StandardizedRecord",
    "company_key",
    "fold",
    "standardize_record",
    "strong_keys",
]
