"""The store's SQLite schema, as the migrations that build it: a new store runs them all, an
older one the ones it lacks, each all-or-nothing (``Store`` runs them on open)."""

SCHEMA_VERSION = 6

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE files (path TEXT PRIMARY KEY, file_hash TEXT NOT NULL);
    CREATE TABLE documents (
        id TEXT PRIMARY KEY,
        path TEXT NOT NULL,
        source TEXT NOT NULL,
        title TEXT NOT NULL,
        date TEXT,
        text TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        meta TEXT NOT NULL DEFAULT '{}',
        indexed_at TEXT NOT NULL
    );
    CREATE INDEX documents_path ON documents(path);
    CREATE INDEX documents_date ON documents(date);
    -- AUTOINCREMENT: a rowid is never reused, so a FAISS id never points at the wrong chunk.
    CREATE TABLE chunks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        ordinal INTEGER NOT NULL,
        start INTEGER NOT NULL,
        end INTEGER NOT NULL,
        text TEXT NOT NULL,
        text_hash TEXT NOT NULL
    );
    CREATE INDEX chunks_doc ON chunks(doc_id, ordinal);
    -- Keyword index over chunk text, updated by triggers inside the same transactions.
    CREATE VIRTUAL TABLE chunks_fts USING fts5(
        text, content='chunks', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
        INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
        INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    CREATE TABLE embeddings (
        model TEXT NOT NULL,
        text_hash TEXT NOT NULL,
        vector BLOB NOT NULL,
        PRIMARY KEY (model, text_hash)
    ) WITHOUT ROWID;
    """,
    # Pruning a removed chunk's cached vector asks "does any chunk still use this text?".
    2: """
    CREATE INDEX chunks_text_hash ON chunks(text_hash);
    """,
    # A file found at a new path is matched to the one that vanished by its hash (a moved folder).
    3: """
    CREATE INDEX files_hash ON files(file_hash);
    """,
    # Saved web chat conversations (rag.chat.saved); each turn is an answer's JSON.
    4: """
    CREATE TABLE conversations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user TEXT NOT NULL DEFAULT '',
        title TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX conversations_user ON conversations(user, updated_at);
    CREATE TABLE turns (
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        ordinal INTEGER NOT NULL,
        answer TEXT NOT NULL,
        PRIMARY KEY (conversation_id, ordinal)
    ) WITHOUT ROWID;
    """,
    # Web pages remember their validators for conditional requests (rag.ingest.web); every document
    # carries a MinHash signature and its band hashes, which find syndicated copies (rag.ingest.duplicates).
    5: """
    ALTER TABLE files ADD COLUMN etag TEXT;
    ALTER TABLE files ADD COLUMN last_modified TEXT;
    -- A rowid table: WITHOUT ROWID stores 512-byte rows badly (searches read 3x slower).
    CREATE TABLE signatures (
        doc_id TEXT PRIMARY KEY REFERENCES documents(id) ON DELETE CASCADE,
        signature BLOB NOT NULL
    );
    CREATE TABLE signature_bands (
        band INTEGER NOT NULL,
        hash INTEGER NOT NULL,
        doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        PRIMARY KEY (band, hash, doc_id)
    ) WITHOUT ROWID;
    CREATE INDEX signature_bands_doc ON signature_bands(doc_id);
    """,
    # The same text indexed again under another name is found by its hash (rag.ingest.indexer);
    # documents that report one story are linked (rag.ingest.stories), so a story is a lookup.
    6: """
    ALTER TABLE documents ADD COLUMN text_hash TEXT;
    CREATE INDEX documents_text_hash ON documents(text_hash);
    CREATE TABLE story_links (
        doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        other_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        score REAL NOT NULL,
        PRIMARY KEY (doc_id, other_id)
    ) WITHOUT ROWID;
    CREATE INDEX story_links_other ON story_links(other_id);
    """,
}

# The tables every store of version 1 or later holds; a file without them is not a store.
TABLES = {"meta", "files", "documents", "chunks", "embeddings"}
