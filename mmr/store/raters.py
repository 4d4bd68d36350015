"""Who may write under a rater name.

Without a sign-in service (running locally), a name is claimed once and bound to a random token that
the claiming browser keeps; only the sha256 of the token is stored, so the database alone lets nobody
write as anyone. A visitor who gives no name gets an anonymous one of their own. With a sign-in service
(Hugging Face OAuth on a Space) the account name is the rater, "hf:<user>", and needs no token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import Engine, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import sessionmaker

from mmr.limits import LimitError, checked_rater_name
from mmr.store.database import writer
from mmr.store.schema import RaterRecord, utcnow

LOCAL, ACCOUNT = "local", "account"
ACCOUNT_PREFIX = "hf:"


class RaterNameTakenError(LimitError):
    pass


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(24)


class RaterStore:
    def __init__(self, engine: Engine):
        self._read = sessionmaker(engine)
        self._write = sessionmaker(writer(engine), expire_on_commit=False)

    def claim(self, name: str, token: str) -> str:
        """Bind ``name`` to ``token`` if nobody holds it; the holder of the token may claim it again."""
        name = checked_rater_name(name)
        if not isinstance(token, str) or len(token) < 16:
            raise LimitError("a rater token is missing; reload the page to get one")
        with self._write.begin() as session:
            session.execute(
                sqlite_insert(RaterRecord)
                .values(name=name, kind=LOCAL, token_sha=_sha(token), created_at=utcnow())
                .on_conflict_do_nothing(index_elements=["name"])
            )
            holder = session.scalar(select(RaterRecord).where(RaterRecord.name == name))
        if holder.kind != LOCAL or not hmac.compare_digest(holder.token_sha or "", _sha(token)):
            raise RaterNameTakenError(f"the name {name!r} is taken by another rater; pick another one")
        return name

    def claim_anonymous(self, token: str) -> str:
        """A fresh "anon-..." name bound to ``token``."""
        while True:
            try:
                return self.claim(f"anon-{secrets.token_hex(4)}", token)
            except RaterNameTakenError:  # 1 in 4 billion: draw again
                continue

    def holds(self, name: object, token: object) -> bool:
        """Whether ``token`` is the one ``name`` was claimed with."""
        if not isinstance(name, str) or not isinstance(token, str) or not name or not token:
            return False
        with self._read() as session:
            holder = session.scalar(select(RaterRecord).where(RaterRecord.name == name))
        return holder is not None and holder.kind == LOCAL and hmac.compare_digest(holder.token_sha or "", _sha(token))

    def account(self, username: str) -> str:
        """The rater name of a signed-in account, recorded on first sight."""
        if not isinstance(username, str) or not username.strip() or len(username) > 60:
            raise LimitError("the signed-in account has no usable user name")
        name = ACCOUNT_PREFIX + username.strip()
        with self._write.begin() as session:
            session.execute(
                sqlite_insert(RaterRecord)
                .values(name=name, kind=ACCOUNT, token_sha=None, created_at=utcnow())
                .on_conflict_do_nothing(index_elements=["name"])
            )
        return name
