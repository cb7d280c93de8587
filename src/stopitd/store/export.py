"""Export a case as evidence: raw .eml files and a JSON manifest with each file's sha256."""

from __future__ import annotations

import hashlib
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from stopitd.analysis.model import to_jsonable
from stopitd.store.actions import CaseNotFoundError, record_event
from stopitd.store.queries import show_case
from stopitd.store.schema import AnalysisRow, OriginalRow, Report


def export_case(
    session: Session, case_id: int, dest: Path, *, as_zip: bool, actor: str, tag_prefix: str
) -> dict[str, Any]:
    """Write `dest` (a new folder, or a .zip file) and return the manifest."""
    case = show_case(session, case_id, tag_prefix=tag_prefix)
    if case is None:
        raise CaseNotFoundError(f"no case {case_id}")
    if dest.exists():
        raise FileExistsError(f"{dest} exists already: choose a new name")
    files: list[tuple[str, bytes, dict[str, Any]]] = []
    reports = session.scalars(
        select(Report).where(Report.case_id == case_id).order_by(Report.id)
    ).all()
    for n, report in enumerate(reports, 1):
        files.append(
            (
                f"report-{n}.eml",
                report.raw,
                {"kind": "report", "spool_id": report.spool_id, "message_id": report.message_id},
            )
        )
        originals = session.scalars(
            select(OriginalRow)
            .join(AnalysisRow, AnalysisRow.id == OriginalRow.analysis_id)
            .where(OriginalRow.report_id == report.id, AnalysisRow.current.is_(True))
            .order_by(OriginalRow.position)
        ).all()
        for m, original in enumerate(originals, 1):
            files.append(
                (
                    f"report-{n}-original-{m}.eml",
                    original.raw,
                    {
                        "kind": "original",
                        "how": original.how,
                        "grade": original.grade,
                        "message_id": original.message_id,
                    },
                )
            )
    case_json = json.dumps(case, ensure_ascii=False, indent=1).encode()
    files.append(("case.json", case_json, {"kind": "case"}))
    now = datetime.now(UTC)
    manifest = {
        "case": case_id,
        "tag": case["tag"],
        "exported_at": to_jsonable(now),
        "exported_by": actor,
        "files": [
            {"name": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), **meta}
            for name, data, meta in files
        ],
    }
    manifest_bytes = json.dumps(manifest, ensure_ascii=False, indent=1).encode()
    if as_zip:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(dest, "x", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data, _ in files:
                zf.writestr(name, data)
            zf.writestr("manifest.json", manifest_bytes)
    else:
        dest.mkdir(parents=True)
        for name, data, _ in files:
            (dest / name).write_bytes(data)
        (dest / "manifest.json").write_bytes(manifest_bytes)
    record_event(
        session,
        case_id,
        actor,
        "exported",
        {
            "to": str(dest),
            "files": len(files),
            "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        },
    )
    return manifest
