"""The tables that schema version 2 added, as the v2 code created them (frozen: the v1 -> v2 upgrade must
create these, not whatever the models say today, or the later upgrades would find their work done)."""

V2_DDL = (
    """CREATE TABLE judging_sessions (
    id INTEGER NOT NULL,
    name VARCHAR(128) NOT NULL,
    collection VARCHAR(64) NOT NULL,
    retrievers TEXT NOT NULL,
    k INTEGER NOT NULL,
    seed VARCHAR(32) NOT NULL,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (name)
);""",
    """CREATE TABLE judgments (
    id INTEGER NOT NULL,
    query_id INTEGER NOT NULL,
    doc_id VARCHAR(512) NOT NULL,
    rater VARCHAR(128) NOT NULL,
    grade INTEGER,
    session_id INTEGER,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (query_id, doc_id, rater),
    FOREIGN KEY(query_id) REFERENCES queries (id),
    FOREIGN KEY(session_id) REFERENCES judging_sessions (id)
);""",
    """CREATE TABLE session_queries (
    id INTEGER NOT NULL,
    session_id INTEGER NOT NULL,
    query_id INTEGER NOT NULL,
    position INTEGER NOT NULL,
    qid VARCHAR(128) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (session_id, position),
    UNIQUE (session_id, qid),
    UNIQUE (session_id, query_id),
    FOREIGN KEY(session_id) REFERENCES judging_sessions (id),
    FOREIGN KEY(query_id) REFERENCES queries (id)
);""",
    """CREATE TABLE shown_documents (
    id INTEGER NOT NULL,
    session_query_id INTEGER NOT NULL,
    retriever VARCHAR(64) NOT NULL,
    rank INTEGER NOT NULL,
    doc_id VARCHAR(512) NOT NULL,
    score FLOAT NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (session_query_id, retriever, rank),
    FOREIGN KEY(session_query_id) REFERENCES session_queries (id)
);""",
    """CREATE INDEX ix_session_queries_session_id ON session_queries (session_id);""",
    """CREATE INDEX ix_judgments_query_id ON judgments (query_id);""",
    """CREATE INDEX ix_shown_documents_session_query_id ON shown_documents (session_query_id);""",
)
