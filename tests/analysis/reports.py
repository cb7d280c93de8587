"""Building blocks for reports built inside tests (the .msg ones, hostile structure)."""

from __future__ import annotations

import base64
from pathlib import Path
from types import ModuleType
from typing import Any

FORWARDED = Path(__file__).resolve().parent.parent.parent / "fixtures" / "forwarded"

TRANSPORT_HEADERS = (
    "Received: from mail-wr1-f41.google.com (mail-wr1-f41.google.com [209.85.221.41])\r\n"
    "\tby AM9PR07MB7154.eurprd07.prod.outlook.com (2603:10a6:20b:2d1::9) with\r\n"
    "\tMicrosoft SMTP Server (version=TLS1_3, cipher=TLS_AES_256_GCM_SHA384) id\r\n"
    "\t15.20.8182.17; Mon, 23 Nov 2026 20:14:06 +0000\r\n"
    "Return-Path: troll.account77@gmail.com\r\n"
    "From: Anon Troll <troll.account77@gmail.com>\r\n"
    "To: <victim@example.edu>\r\n"
    "Subject: you will regret this\r\n"
    "Date: Mon, 23 Nov 2026 21:14:05 +0100\r\n"
    "Message-ID: <CAJx7Qm1R8Tq4pZ0vK2wN5sYt3uE9hB6dL1cF@mail.gmail.com>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=\"UTF-8\"\r\n"
)


def _aspose() -> ModuleType:
    """The .msg writer (a test-only dependency); a clear failure when it is missing."""
    try:
        from aspose.email_foss import msg
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise AssertionError(
            "building .msg fixtures needs aspose-email-foss: pip install -e '.[dev]'"
        ) from e
    return msg


def fixture(name: str) -> bytes:
    return (FORWARDED / name).read_bytes()


def msg_file(*, headers: str | None = TRANSPORT_HEADERS, embedded: Any = None) -> bytes:
    """An Outlook .msg as Outlook saves received mail (transport headers kept)."""
    aspose_msg = _aspose()
    m = aspose_msg.MapiMessage.create(
        "you will regret this", "I know where you park. You will regret reporting me.\r\n"
    )
    if headers is not None:
        m.set_property(aspose_msg.PropertyId.TRANSPORT_MESSAGE_HEADERS, headers)
    m.set_property(
        aspose_msg.PropertyId.INTERNET_MESSAGE_ID,
        "<CAJx7Qm1R8Tq4pZ0vK2wN5sYt3uE9hB6dL1cF@mail.gmail.com>",
    )
    m.set_property(aspose_msg.PropertyId.SENDER_NAME, "Anon Troll")
    m.set_property(aspose_msg.PropertyId.SENDER_EMAIL_ADDRESS, "troll.account77@gmail.com")
    if embedded is not None:
        m.add_embedded_message_attachment(embedded, filename="earlier.msg")
    return bytes(m.to_bytes())


def embedded_message() -> Any:
    aspose_msg = _aspose()
    inner = aspose_msg.MapiMessage.create("first warning", "This was the first one.\r\n")
    inner.set_property(
        aspose_msg.PropertyId.TRANSPORT_MESSAGE_HEADERS,
        "Received: from mail-ej1-f50.google.com (mail-ej1-f50.google.com [209.85.218.50])\r\n"
        "\tby mx1.example.edu (Postfix) with ESMTPS id 4Cw9Qq1Rr2z9sTa;\r\n"
        "\tSun, 22 Nov 2026 18:00:01 +0000 (UTC)\r\n"
        "From: Anon Troll <troll.account77@gmail.com>\r\n"
        "Subject: first warning\r\n"
        "Message-ID: <first-warning-1@mail.gmail.com>\r\n"
        "Date: Sun, 22 Nov 2026 19:00:00 +0100\r\n",
    )
    return inner


def b64_lines(data: bytes) -> str:
    text = base64.b64encode(data).decode("ascii")
    return "\r\n".join(text[i : i + 76] for i in range(0, len(text), 76))


def outlook_report_with(
    filename: str, data: bytes, ctype: str = "application/vnd.ms-outlook"
) -> bytes:
    """An Outlook desktop report with a file attached (a saved .msg dragged into a mail)."""
    head = (
        "Received: from mail-eopbgr1300121.outbound.protection.outlook.com "
        "(mail-eopbgr1300121.outbound.protection.outlook.com [40.107.130.121])\r\n"
        "\tby stopit.example.edu (stopitd) with ESMTPS id 01JDQB0C1D2E3F4G5H6J7K8M9N\r\n"
        "\tfor <stopit@example.edu>; Tue, 24 Nov 2026 12:00:02 +0000\r\n"
        "From: Vicky Tim <vicky.tim@example.edu>\r\n"
        "To: \"stopit@example.edu\" <stopit@example.edu>\r\n"
        "Subject: harassing message attached\r\n"
        "Date: Tue, 24 Nov 2026 12:00:00 +0000\r\n"
        "Message-ID: <DB9PR07MB8123D2E3F4A5B6C7D8E9F0A1B2C3@"
        "DB9PR07MB8123.eurprd07.prod.outlook.com>\r\n"
        "X-Mailer: Microsoft Outlook 16.0\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed;\r\n"
        "\tboundary=\"----=_NextPart_000_0011_01DB3E4F.5A6B7C80\"\r\n"
        "\r\n"
        "This is a multipart message in MIME format.\r\n"
        "\r\n"
        "------=_NextPart_000_0011_01DB3E4F.5A6B7C80\r\n"
        "Content-Type: text/plain;\r\n\tcharset=\"us-ascii\"\r\n"
        "Content-Transfer-Encoding: 7bit\r\n"
        "\r\n"
        "The message is attached as a file.\r\n"
        "\r\n"
        "------=_NextPart_000_0011_01DB3E4F.5A6B7C80\r\n"
        f"Content-Type: {ctype};\r\n\tname=\"{filename}\"\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        f"Content-Disposition: attachment;\r\n\tfilename=\"{filename}\"\r\n"
        "\r\n"
    )
    tail = "\r\n\r\n------=_NextPart_000_0011_01DB3E4F.5A6B7C80--\r\n"
    return (head + b64_lines(data) + tail).encode("ascii")
