"""Several stopitd nodes on one PostgreSQL store, fed the same reports concurrently:
exactly one case per distinct original, every report once, reporters counted, links right.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict

import pytest
from sqlalchemy import func, select

from stopitd.store import db
from stopitd.store.queries import CaseFilter, list_cases
from stopitd.store.schema import DedupeKey, Report
from tests.conftest import ROOT
from tests.store.concurrent_worker import DISTINCT, REPORTERS

NODES = 4


@pytest.mark.parametrize("mode", ["one-by-one", "batch"])
def test_concurrent_nodes_make_one_case_per_distinct_report(pg_url: str, mode: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.store.concurrent_worker", pg_url, str(seed), mode],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in range(NODES)
    ]
    for p in procs:  # every node has its reports analysed and its engine up
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:  # then all start at once
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=240)
        assert p.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))

    # every node got the same case id for every spool entry (idempotent under races)
    answers: dict[str, set[int]] = defaultdict(set)
    for r in results:
        for spool_id, case_id in r["saved"].items():
            answers[spool_id].add(case_id)
    assert len(answers) == DISTINCT * len(REPORTERS)
    assert all(len(ids) == 1 for ids in answers.values()), answers
    # one case per distinct original, holding exactly that original's reports
    by_original: dict[str, set[int]] = defaultdict(set)
    for spool_id, ids in answers.items():
        by_original[spool_id.split("-")[1]] |= ids
    assert len(by_original) == DISTINCT
    assert all(len(ids) == 1 for ids in by_original.values())
    assert len({next(iter(ids)) for ids in by_original.values()}) == DISTINCT

    engine = db.make_engine(pg_url)
    with db.make_sessionmaker(engine)() as session:
        assert session.scalar(select(func.count(Report.id))) == DISTINCT * len(REPORTERS)
        assert session.scalar(select(func.count(func.distinct(DedupeKey.case_id)))) == DISTINCT
        rows = list_cases(session, CaseFilter())
    engine.dispose()
    assert len(rows) == DISTINCT
    assert {(r["report_count"], r["reporter_count"]) for r in rows} == {(3, 3)}
    # related: the cases of the same sender group, and only those
    case_of = {int(n): next(iter(ids)) for n, ids in by_original.items()}
    for n, case_id in case_of.items():
        expected = sorted((case_of[m] for m in case_of if m % 3 == n % 3 and m != n), reverse=True)
        row = next(r for r in rows if r["id"] == case_id)
        assert row["related"] == expected, (n, row["related"], expected)
    print("retries after deadlock/serialization failures:", [r["retries"] for r in results])
