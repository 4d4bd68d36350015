"""Everything a user judges lands here: SQLite through SQLAlchemy, one write per rating."""

from mmr.store.ratings import RatingRow, RatingStore, SchemaVersionError
from mmr.store.uploads import save_uploaded_image

__all__ = ["RatingRow", "RatingStore", "SchemaVersionError", "save_uploaded_image"]
