"""Case operations. Each takes a Session and never commits: the caller owns the transaction.

The worker calls `save_report`; the CLI reads with `list_cases`/`show_case` and acts with
the functions in `stopitd.store.actions`.
"""

from __future__ import annotations

from stopitd.store.intake import SYSTEM_ACTOR, case_tag, record_sent_message, save_report
from stopitd.store.queries import CaseFilter, case_summary, list_cases, show_case

__all__ = [
    "SYSTEM_ACTOR",
    "CaseFilter",
    "case_summary",
    "case_tag",
    "list_cases",
    "record_sent_message",
    "save_report",
    "show_case",
]
