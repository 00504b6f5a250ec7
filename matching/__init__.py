"""The hub's matching library: pure, no I/O, nothing of the hub imported.

- `matching.standardize`, `names`, `text`, `records`: field standardizers and the
  standardized record with its strong keys (identifiers that decide alone);
- `matching.prepare`, `blocking`: a record's match features and blocking keys;
- `matching.comparators`, `scoring`, `model`: field comparisons and the
  Fellegi-Sunter model that turns them into a match probability;
- `matching.training`, `adoption`: EM fitting of m, u and the prior on the held
  records, and the check a newly fitted model passes before it is adopted.

docs/matching.md explains the method and its defaults.
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
