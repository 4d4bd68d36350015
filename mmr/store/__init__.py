"""Everything a user judges lands here: SQLite through SQLAlchemy, one committed write per grade.

``RatingStore`` opens (and upgrades) the database; ``RatingStore.judgments`` is blind judging's door.
"""

from mmr.store.judgments import JudgmentRow, JudgmentStore, SessionInfo, SessionQueryInfo, ShownRow
from mmr.store.migrations import SchemaVersionError
from mmr.store.ratings import RatingRow, RatingStore
from mmr.store.uploads import save_uploaded_image

__all__ = [
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
