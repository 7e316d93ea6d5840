//! The schema, as migrations applied in order; `PRAGMA user_version` records how many ran.

/// Every migration, oldest first. A database at version N has run the first N.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: jobs and passes.
    "CREATE TABLE jobs (
        id          INTEGER PRIMARY KEY,
        replica     TEXT NOT NULL,
        kind        TEXT NOT NULL,
        namespace   TEXT NOT NULL,
        name        TEXT NOT NULL,
        operation   TEXT NOT NULL CHECK (operation IN ('apply', 'delete')),
        change_key  TEXT NOT NULL,
        action      TEXT NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        runs        INTEGER NOT NULL DEFAULT 1,
        error       TEXT,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        started_at  TEXT,
        finished_at TEXT,
        duration_ms INTEGER,
        UNIQUE (replica, kind, namespace, name, change_key, operation)
    );
    CREATE INDEX jobs_status ON jobs (status, replica);
    CREATE TABLE passes (
        id          INTEGER PRIMARY KEY,
        source      TEXT NOT NULL,
        root_hash   TEXT NOT NULL,
        objects     INTEGER NOT NULL,
        started_at  TEXT NOT NULL,
        finished_at TEXT,
        drifted     INTEGER NOT NULL DEFAULT 0,
        applied     INTEGER NOT NULL DEFAULT 0,
        failed      INTEGER NOT NULL DEFAULT 0
    );",
    // 2: API users (bcrypt hashes) and sessions (sha256 of bearer tokens, never the tokens).
    "CREATE TABLE users (
        name          TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        created_at    TEXT NOT NULL,
        updated_at    TEXT NOT NULL
    );
    CREATE TABLE sessions (
        token_sha256 TEXT PRIMARY KEY,
        user         TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
        created_at   TEXT NOT NULL,
        expires_at   INTEGER NOT NULL
    );
    CREATE INDEX sessions_expiry ON sessions (expires_at);",
    // 3: prunes held over --max-prune and delayed by --prune-delay, and cancelled ones; the
    // process that runs a job (`owner`), a delayed prune's due time, the options of the pass
    // that made the job (for retries), and a record of every release of held prunes. SQLite
    // cannot change a CHECK constraint in place: the table is rebuilt.
    "CREATE TABLE jobs_v3 (
        id          INTEGER PRIMARY KEY,
        replica     TEXT NOT NULL,
        kind        TEXT NOT NULL,
        namespace   TEXT NOT NULL,
        name        TEXT NOT NULL,
        operation   TEXT NOT NULL CHECK (operation IN ('apply', 'delete')),
        change_key  TEXT NOT NULL,
        action      TEXT NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed',
                                                    'held', 'delayed', 'cancelled')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        runs        INTEGER NOT NULL DEFAULT 1,
        error       TEXT,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        started_at  TEXT,
        finished_at TEXT,
        duration_ms INTEGER,
        owner       TEXT,
        due_at      TEXT,
        options     TEXT,
        UNIQUE (replica, kind, namespace, name, change_key, operation)
    );
    INSERT INTO jobs_v3 (id, replica, kind, namespace, name, operation, change_key, action,
                         status, attempts, runs, error, created_at, updated_at, started_at,
                         finished_at, duration_ms)
        SELECT id, replica, kind, namespace, name, operation, change_key, action, status,
               attempts, runs, error, created_at, updated_at, started_at, finished_at,
               duration_ms
        FROM jobs;
    DROP TABLE jobs;
    ALTER TABLE jobs_v3 RENAME TO jobs;
    CREATE INDEX jobs_status ON jobs (status, replica);
    CREATE TABLE releases (
        id          INTEGER PRIMARY KEY,
        replica     TEXT NOT NULL,
        released_by TEXT NOT NULL,
        released_at TEXT NOT NULL,
        jobs        INTEGER NOT NULL
    );",
    // 4: the replica servers' verdicts on suspected drift, one per object: the desired change
    // key and live resourceVersion it holds for, and the paths that differ (none: in sync).
    "CREATE TABLE verdicts (
        replica      TEXT NOT NULL,
        kind         TEXT NOT NULL,
        namespace    TEXT NOT NULL,
        name         TEXT NOT NULL,
        desired_key  TEXT NOT NULL,
        live_version TEXT NOT NULL,
        paths        TEXT NOT NULL,
        checked_at   TEXT NOT NULL,
        PRIMARY KEY (replica, kind, namespace, name)
    );",
    // 5: roles (every user so far was an administrator), and the audit trail of the changes
    // made through the API: who, what, when, from where, and the answer.
    "ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
    CREATE TABLE audit (
        id      INTEGER PRIMARY KEY,
        at      TEXT NOT NULL,
        user    TEXT NOT NULL,
        action  TEXT NOT NULL,
        target  TEXT NOT NULL,
        remote  TEXT,
        status  INTEGER NOT NULL
    );",
];
