"""GTIDs of both server families, and where a ``--from`` argument points. Pure.

* MariaDB: ``domain-server-sequence`` (``0-1-42``); a position (``gtid_binlog_pos``) is a
  comma-separated list with one GTID per replication domain.
* MySQL: ``source_uuid:transaction_id`` (``3e11fa47-71ca-11e1-9e33-c80aa9429562:23``); a set
  is ``uuid:1-5:7,uuid2:1-3``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from replicator.errors import ConfigError

_MARIADB = re.compile(r"^\d+-\d+-\d+$")
_MYSQL = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
                    r"(:\d+(-\d+)?)+$")
_FILE_POS = re.compile(r"^(?P<file>[^\s:]+\.\d+):(?P<pos>\d+)$")


def is_mariadb_gtid(text: str) -> bool:
    return all(_MARIADB.match(p.strip()) for p in text.split(",")) if text else False


def is_mysql_gtid(text: str) -> bool:
    return all(_MYSQL.match(p.strip()) for p in text.split(",")) if text else False


@dataclass(frozen=True, slots=True)
class StartAt:
    """Where streaming starts: a file position, or a GTID set (``flavour`` says whose)."""

    file: str | None = None
    offset: int | None = None
    gtid: str | None = None
    flavour: str = ""  # "mariadb" | "mysql" for GTID starts

    def describe(self) -> str:
        return f"gtid {self.gtid}" if self.gtid else f"{self.file}:{self.offset}"


def parse_from(text: str) -> StartAt:
    """``--from FILE:POS`` or ``--from GTID`` (MariaDB ``d-s-n[,..]`` or MySQL ``uuid:n[-m]``)."""
    text = text.strip()
    m = _FILE_POS.match(text)
    if m:
        pos = int(m["pos"])
        if pos < 4:
            raise ConfigError(f"--from {text}: a binlog position starts at 4")
        return StartAt(file=m["file"], offset=pos)
    if is_mariadb_gtid(text):
        return StartAt(gtid=text, flavour="mariadb")
    if is_mysql_gtid(text):
        return StartAt(gtid=text, flavour="mysql")
    raise ConfigError(
        f"--from {text!r}: expected FILE:POS (e.g. mysql-bin.000003:1234), a MariaDB GTID position "
        "(e.g. 0-1-42) or a MySQL GTID set (e.g. 3e11fa47-71ca-11e1-9e33-c80aa9429562:1-23)"
    )


class GtidState:
    """The GTID position after the transactions seen so far (MariaDB: per domain)."""

    def __init__(self, initial: str = "") -> None:
        self._domains: dict[str, str] = {}
        self.last: str | None = None
        for part in filter(None, (p.strip() for p in initial.split(","))):
            self.add(part)

    def add(self, gtid: str) -> None:
        self.last = gtid
        if _MARIADB.match(gtid):
            self._domains[gtid.split("-", 1)[0]] = gtid

    def position(self) -> str:
        """MariaDB ``gtid_binlog_pos`` form; for MySQL, the last GTID seen."""
        if self._domains:
            return ",".join(self._domains[d] for d in sorted(self._domains, key=int))
        return self.last or ""
