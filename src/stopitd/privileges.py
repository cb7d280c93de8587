"""Least privilege: a daemon started as root keeps only its bound socket, then becomes
the service user (``[daemon] user``) before it opens the spool or reads any mail."""

from __future__ import annotations

import os
import pwd

from stopitd.errors import StopitdError

PRIVATE_UMASK = 0o077  # files 0600, folders 0700: reports are the most sensitive mail we hold


def restrict_umask() -> None:
    os.umask(PRIVATE_UMASK)


def drop_to(user: str) -> tuple[int, int]:
    """Become ``user`` (its primary group, no supplementary groups); (uid, gid).

    Already running as that user is fine (systemd's ``User=``); any other non-root start
    with a user set is an error, as is a user that does not exist.
    """
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise StopitdError(f"daemon.user: no such user {user!r}") from None
    uid, gid = entry.pw_uid, entry.pw_gid
    if os.geteuid() != 0:
        if os.geteuid() == uid:
            return uid, gid
        raise StopitdError(
            f"daemon.user = {user!r}: started as uid {os.geteuid()}, "
            "which cannot switch users (start as root, or as that user)"
        )
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid or os.getegid() != gid:
        raise StopitdError(f"daemon.user: switching to {user!r} did not take effect")
    try:  # a real drop is irreversible
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise StopitdError(f"daemon.user: could regain root after switching to {user!r}")
    os.environ["HOME"] = entry.pw_dir
    os.environ["USER"] = os.environ["LOGNAME"] = user
    return uid, gid
