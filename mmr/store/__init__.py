"""Everything a user judges lands here: SQLite through SQLAlchemy, one committed write per grade.

``RatingStore`` opens (and upgrades) the database; ``RatingStore.judgments`` is blind judging's door.
"""

from mmr.store.judgments import JudgmentStore
from mmr.store.migrations import SchemaVersionError
from mmr.store.raters import RaterNameTakenError, RaterStore
from mmr.store.ratings import RatingRow, RatingStore
from mmr.store.records import (
    IMPORT_PREFIX,
    ImportInfo,
    JudgmentRow,
    SessionInfo,
    SessionQueryInfo,
    ShownRow,
)
from mmr.store.uploads import save_uploaded_image

__all__ = [
    "IMPORT_PREFIX",
    "ImportInfo",
    "RaterNameTakenError",
    "RaterStore",
    "JudgmentRow",
    "JudgmentStore",
    "RatingRow",
    "RatingStore",
    "SchemaVersionError",
    "SessionInfo",
    "SessionQueryInfo",
    "ShownRow",
    "save_uploaded_image",
]
