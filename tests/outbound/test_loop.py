"""No mail loop: whatever stopitd sends, fed back to stopit@, is never answered."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from stopitd.outbound.sender import deliver_due
from stopitd.store.outbox_schema import OutboxRow
from stopitd.store.schema import Event
from tests.outbound.conftest import (
    REPORT_ADDRESS,
    Smarthost,
    file_report,
    fixture,
    sessions_for,
    write_settings,
)


@pytest.mark.parametrize(
    "bounce_sender",
    [
        None,  # delivered back with the envelope sender the smarthost saw (<>)
        "reporter.rita@gmail.com",  # a forwarder that rewrites the sender (SRS-less alias)
        REPORT_ADDRESS,  # an alias that sends it to stopit@ as stopit@
    ],
)
def test_acknowledgement_sent_back_to_stopit_is_never_answered(
    store_url: str, tmp_path: Path, smarthost: Smarthost, bounce_sender: str | None
) -> None:
    settings = write_settings(tmp_path, store_url, smarthost.port)
    sessions = sessions_for(store_url)
    file_report(
        sessions,
        settings,
        fixture("gmail-attached-original.eml"),
        mail_from="reporter.rita@gmail.com",
        spool_id="first",
    )
    fed_back = 0
    for round_no in range(5):
        deliver_due(sessions, settings)
        for n, message in enumerate(list(smarthost.messages)):
            sender = message.mail_from.strip("<>") if bounce_sender is None else bounce_sender
            file_report(
                sessions, settings, message.data, mail_from=sender, spool_id=f"back-{round_no}-{n}"
            )
            fed_back += 1
    assert fed_back == 5  # the one acknowledgement, fed back five times
    assert len(smarthost.messages) == 1
    with sessions() as session:
        assert session.scalar(select(func.count(OutboxRow.id))) == 1
        reasons = {
            e.detail["reason"]
            for e in session.scalars(select(Event).where(Event.kind == "ack_skipped"))
        }
    expected = {None: "null-sender", REPORT_ADDRESS: "our-address"}.get(bounce_sender, "loop")
    assert reasons == {expected}


def test_report_from_our_own_address_is_not_answered(
    sqlite_url: str, tmp_path: Path, smarthost: Smarthost
) -> None:
    settings = write_settings(tmp_path, sqlite_url, smarthost.port)
    sessions = sessions_for(sqlite_url)
    _, after = file_report(
        sessions,
        settings,
        fixture("gmail-attached-original.eml"),
        mail_from="Stopit@Example.EDU",
        spool_id="self",
    )
    deliver_due(sessions, settings)
    assert smarthost.messages == []
    assert after.ack == "our-address"
