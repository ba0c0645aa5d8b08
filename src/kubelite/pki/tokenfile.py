"""Static bearer tokens from a `--token-auth-file`, in kube-apiserver's CSV format.

Each record is `token,user,uid[,"group1,group2"]`; further columns are ignored. As upstream reads it
(Go's encoding/csv with a variable field count): blank lines are skipped, there is no comment
syntax, a record with fewer than 3 columns is an error, a record with an empty token is skipped,
and a repeated token takes the values of its last record. Unlike upstream, an empty group column
gives no groups rather than one group named "".
"""

from __future__ import annotations

import csv
import hashlib
import hmac
from dataclasses import dataclass, field

TokenUser = tuple[str, str, list[str]]


@dataclass
class TokenFile:
    path: str
    # sha256(token) -> (token, user, uid, groups). Hashing first means the dict lookup never compares
    # secret bytes; the final comparison is constant-time.
    _by_digest: dict[bytes, tuple[bytes, TokenUser]] = field(default_factory=dict, repr=False)
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self._by_digest)

    def add(self, token: str, user: str, uid: str, groups: list[str]) -> None:
        raw = token.encode()
        self._by_digest[hashlib.sha256(raw).digest()] = (raw, (user, uid, list(groups)))

    def lookup(self, token: str) -> TokenUser | None:
        """(user, uid, groups) for a known token, else None."""
        raw = token.encode("utf-8", "surrogateescape")
        entry = self._by_digest.get(hashlib.sha256(raw).digest())
        if entry is None or not hmac.compare_digest(entry[0], raw):
            return None
        user, uid, groups = entry[1]
        return user, uid, list(groups)

    def as_dict(self) -> dict[str, TokenUser]:
        return {raw.decode(): (u, uid, list(g)) for raw, (u, uid, g) in self._by_digest.values()}


def parse_token_file(path: str) -> TokenFile:
    """Read `path`; raise ValueError naming the file and line of the first malformed record."""
    result = TokenFile(path)
    try:
        f = open(path, newline="", encoding="utf-8")
    except OSError as e:
        raise ValueError(f"cannot read token file '{path}': {e.strerror}") from e
    with f:
        reader = csv.reader(f, strict=True)
        record_num = 0
        line = 1  # first line of the record about to be read
        while True:
            try:
                record = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError) as e:
                raise ValueError(f"token file '{path}', line {line}: {e}") from e
            start, line = line, reader.line_num + 1
            if not record:
                continue
            if len(record) < 3:
                raise ValueError(
                    f"token file '{path}', line {start}: must have at least 3 columns "
                    f"(token, user name, user uid), found {len(record)}"
                )
            record_num += 1
            token, user, uid = record[0], record[1], record[2]
            if token == "":
                result.warnings.append(
                    f"empty token has been found in token file '{path}', record number '{record_num}'"
                )
                continue
            groups = [g for g in record[3].split(",") if g] if len(record) >= 4 else []
            if result.lookup(token) is not None:
                result.warnings.append(
                    f"duplicate token has been found in token file '{path}', record number '{record_num}'"
                )
            result.add(token, user, uid, groups)
    return result


def load_token_file(path: str) -> dict[str, TokenUser]:
    """token -> (user, uid, groups). Use `parse_token_file(path).lookup` to authenticate."""
    return parse_token_file(path).as_dict()
