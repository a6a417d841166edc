-- cspine schema, version 1 (SQLite). Times are UTC (DATETIME, written by the driver as text).
-- The PostgreSQL set in ../postgres has the same tables, columns and indexes.

CREATE TABLE users (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    username        TEXT NOT NULL,
    display_name    TEXT NOT NULL DEFAULT '',
    password_hash   TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('reviewer', 'admin')),
    disabled        BOOLEAN NOT NULL DEFAULT FALSE,
    failed_logins   INTEGER NOT NULL DEFAULT 0,
    last_login_at   DATETIME,
    created_at      DATETIME NOT NULL,
    updated_at      DATETIME NOT NULL
);
CREATE UNIQUE INDEX users_username_key ON users (username);

CREATE TABLE sessions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash      TEXT NOT NULL,
    csrf_token      TEXT NOT NULL,
    remote_addr     TEXT NOT NULL DEFAULT '',
    created_at      DATETIME NOT NULL,
    last_seen_at    DATETIME NOT NULL,
    expires_at      DATETIME NOT NULL
);
CREATE UNIQUE INDEX sessions_token_hash_key ON sessions (token_hash);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

CREATE TABLE studies (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    study_instance_uid   TEXT NOT NULL,
    accession_number     TEXT NOT NULL DEFAULT '',
    patient_id           TEXT NOT NULL DEFAULT '',
    patient_name         TEXT NOT NULL DEFAULT '',
    study_date           TEXT NOT NULL DEFAULT '',
    study_description    TEXT NOT NULL DEFAULT '',
    modalities           TEXT NOT NULL DEFAULT '',
    calling_ae_title     TEXT NOT NULL DEFAULT '',
    source               TEXT NOT NULL DEFAULT 'push' CHECK (source IN ('push', 'pull')),
    state                TEXT NOT NULL DEFAULT 'receiving'
                         CHECK (state IN ('receiving', 'complete', 'no_measurable_image')),
    state_reason         TEXT NOT NULL DEFAULT '',
    instance_count       INTEGER NOT NULL DEFAULT 0,
    first_instance_at    DATETIME NOT NULL,
    last_instance_at     DATETIME NOT NULL,
    completed_at         DATETIME,
    created_at           DATETIME NOT NULL,
    updated_at           DATETIME NOT NULL
);
CREATE UNIQUE INDEX studies_study_instance_uid_key ON studies (study_instance_uid);
CREATE INDEX studies_state_last_instance_at_idx ON studies (state, last_instance_at);
CREATE INDEX studies_created_at_idx ON studies (created_at);

CREATE TABLE series (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    study_id             BIGINT NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    series_instance_uid  TEXT NOT NULL,
    modality             TEXT NOT NULL DEFAULT '',
    series_number        INTEGER,
    series_description   TEXT NOT NULL DEFAULT '',
    body_part_examined   TEXT NOT NULL DEFAULT '',
    protocol_name        TEXT NOT NULL DEFAULT '',
    created_at           DATETIME NOT NULL
);
CREATE UNIQUE INDEX series_series_instance_uid_key ON series (series_instance_uid);
CREATE INDEX series_study_id_idx ON series (study_id);

CREATE TABLE instances (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    study_id             BIGINT NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    series_id            BIGINT NOT NULL REFERENCES series (id) ON DELETE CASCADE,
    sop_instance_uid     TEXT NOT NULL,
    sop_class_uid        TEXT NOT NULL,
    transfer_syntax_uid  TEXT NOT NULL,
    instance_number      INTEGER,
    view_position        TEXT NOT NULL DEFAULT '',
    patient_orientation  TEXT NOT NULL DEFAULT '',
    image_laterality     TEXT NOT NULL DEFAULT '',
    image_rows           INTEGER NOT NULL DEFAULT 0,
    image_columns        INTEGER NOT NULL DEFAULT 0,
    spool_path           TEXT NOT NULL,
    sha256               TEXT NOT NULL CHECK (length(sha256) = 64),
    size_bytes           BIGINT NOT NULL CHECK (size_bytes >= 0),
    calling_ae_title     TEXT NOT NULL DEFAULT '',
    called_ae_title      TEXT NOT NULL DEFAULT '',
    peer_address         TEXT NOT NULL DEFAULT '',
    state                TEXT NOT NULL DEFAULT 'received'
                         CHECK (state IN ('received', 'selected', 'skipped', 'analyzed', 'failed')),
    state_reason         TEXT NOT NULL DEFAULT '',
    received_at          DATETIME NOT NULL,
    purged_at            DATETIME,
    updated_at           DATETIME NOT NULL
);
CREATE UNIQUE INDEX instances_sop_instance_uid_key ON instances (sop_instance_uid);
CREATE INDEX instances_study_id_idx ON instances (study_id);
CREATE INDEX instances_series_id_idx ON instances (series_id);
CREATE INDEX instances_received_at_idx ON instances (received_at);

CREATE TABLE analyses (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id            BIGINT NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    study_id               BIGINT NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    model_name             TEXT NOT NULL,
    model_version          TEXT NOT NULL,
    mode                   TEXT NOT NULL CHECK (mode IN ('hierarchical', 'single_stage')),
    revision               INTEGER NOT NULL DEFAULT 1 CHECK (revision >= 1),
    status                 TEXT NOT NULL CHECK (status IN ('ok', 'rejected', 'failed')),
    error                  TEXT NOT NULL DEFAULT '',
    facing                 TEXT NOT NULL DEFAULT '',
    spacing_source         TEXT NOT NULL DEFAULT '',
    pixel_spacing_row_mm   REAL,
    pixel_spacing_col_mm   REAL,
    c2c7_cobb_deg          REAL,
    c2_slope_deg           REAL,
    c7_slope_deg           REAL,
    c7_sup_slope_deg       REAL,
    c2c7_sva_mm            REAL,
    seg_c2_c3_deg          REAL,
    seg_c3_c4_deg          REAL,
    seg_c4_c5_deg          REAL,
    seg_c5_c6_deg          REAL,
    seg_c6_c7_deg          REAL,
    c7_confidence          REAL,
    c7_obscuration         TEXT NOT NULL DEFAULT '',
    review_required        BOOLEAN NOT NULL DEFAULT FALSE,
    result_json            TEXT NOT NULL DEFAULT '{}',
    timings_json           TEXT NOT NULL DEFAULT '{}',
    total_ms               REAL,
    started_at             DATETIME NOT NULL,
    finished_at            DATETIME NOT NULL,
    created_at             DATETIME NOT NULL
);
-- Idempotency: one analysis per source instance, model version, mode and revision.
CREATE UNIQUE INDEX analyses_source_model_key
    ON analyses (instance_id, model_name, model_version, mode, revision);
CREATE INDEX analyses_study_id_idx ON analyses (study_id);
CREATE INDEX analyses_review_required_created_at_idx ON analyses (review_required, created_at);

CREATE TABLE review_reasons (
    analysis_id   BIGINT NOT NULL REFERENCES analyses (id) ON DELETE CASCADE,
    reason        TEXT NOT NULL,
    PRIMARY KEY (analysis_id, reason)
);
CREATE INDEX review_reasons_reason_idx ON review_reasons (reason);

CREATE TABLE landmarks (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    analysis_id   BIGINT NOT NULL REFERENCES analyses (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    stage         TEXT NOT NULL CHECK (stage IN ('global', 'refined')),
    x             REAL NOT NULL,
    y             REAL NOT NULL,
    confidence    REAL NOT NULL
);
CREATE UNIQUE INDEX landmarks_analysis_stage_name_key ON landmarks (analysis_id, stage, name);

CREATE TABLE review_tasks (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    analysis_id          BIGINT NOT NULL REFERENCES analyses (id) ON DELETE CASCADE,
    state                TEXT NOT NULL DEFAULT 'pending'
                         CHECK (state IN ('pending', 'verified', 'corrected', 'rejected')),
    reason               TEXT NOT NULL DEFAULT '',
    assigned_user_id     BIGINT REFERENCES users (id) ON DELETE SET NULL,
    decided_by_user_id   BIGINT REFERENCES users (id) ON DELETE SET NULL,
    decided_at           DATETIME,
    comment              TEXT NOT NULL DEFAULT '',
    facing               TEXT NOT NULL DEFAULT '',
    c2c7_cobb_deg        REAL,
    c2_slope_deg         REAL,
    c7_slope_deg         REAL,
    c7_sup_slope_deg     REAL,
    c2c7_sva_mm          REAL,
    seg_c2_c3_deg        REAL,
    seg_c3_c4_deg        REAL,
    seg_c4_c5_deg        REAL,
    seg_c5_c6_deg        REAL,
    seg_c6_c7_deg        REAL,
    version              INTEGER NOT NULL DEFAULT 1,
    created_at           DATETIME NOT NULL,
    updated_at           DATETIME NOT NULL
);
-- At most one open task per analysis.
CREATE UNIQUE INDEX review_tasks_pending_analysis_key ON review_tasks (analysis_id) WHERE state = 'pending';
CREATE INDEX review_tasks_state_created_at_idx ON review_tasks (state, created_at);

-- The reviewer's landmarks, kept beside the machine's (landmarks table).
CREATE TABLE review_landmarks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    review_task_id  BIGINT NOT NULL REFERENCES review_tasks (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    x               REAL NOT NULL,
    y               REAL NOT NULL
);
CREATE UNIQUE INDEX review_landmarks_task_name_key ON review_landmarks (review_task_id, name);

CREATE TABLE reports (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    analysis_id             BIGINT NOT NULL REFERENCES analyses (id) ON DELETE CASCADE,
    review_task_id          BIGINT REFERENCES review_tasks (id) ON DELETE SET NULL,
    revision                INTEGER NOT NULL CHECK (revision >= 1),
    predecessor_id          BIGINT REFERENCES reports (id) ON DELETE SET NULL,
    verification_flag       TEXT NOT NULL DEFAULT 'UNVERIFIED' CHECK (verification_flag IN ('UNVERIFIED', 'VERIFIED')),
    sr_sop_instance_uid     TEXT NOT NULL,
    sr_series_instance_uid  TEXT NOT NULL,
    sr_path                 TEXT NOT NULL DEFAULT '',
    sc_sop_instance_uid     TEXT,
    sc_series_instance_uid  TEXT,
    sc_path                 TEXT NOT NULL DEFAULT '',
    created_at              DATETIME NOT NULL
);
CREATE UNIQUE INDEX reports_analysis_revision_key ON reports (analysis_id, revision);
CREATE UNIQUE INDEX reports_sr_sop_instance_uid_key ON reports (sr_sop_instance_uid);
CREATE UNIQUE INDEX reports_sc_sop_instance_uid_key ON reports (sc_sop_instance_uid);

CREATE TABLE jobs (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    kind              TEXT NOT NULL,
    args              TEXT NOT NULL DEFAULT '{}',
    state             TEXT NOT NULL DEFAULT 'available'
                      CHECK (state IN ('available', 'running', 'completed', 'cancelled', 'dead')),
    priority          SMALLINT NOT NULL DEFAULT 2,
    attempt           INTEGER NOT NULL DEFAULT 0,
    max_attempts      INTEGER NOT NULL CHECK (max_attempts >= 1),
    run_at            DATETIME NOT NULL,
    unique_key        TEXT,
    locked_by         TEXT NOT NULL DEFAULT '',
    lease_expires_at  DATETIME,
    last_error        TEXT NOT NULL DEFAULT '',
    errors            TEXT NOT NULL DEFAULT '[]',
    created_at        DATETIME NOT NULL,
    updated_at        DATETIME NOT NULL,
    attempted_at      DATETIME,
    finalized_at      DATETIME
);
-- Idempotency keys are unique for ever (NULL keys never conflict).
CREATE UNIQUE INDEX jobs_unique_key_key ON jobs (unique_key);
CREATE INDEX jobs_claim_idx ON jobs (priority, run_at, id) WHERE state = 'available';
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_kind_state_idx ON jobs (kind, state);

CREATE TABLE transfers (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    report_id         BIGINT NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    destination       TEXT NOT NULL,
    ae_title          TEXT NOT NULL,
    host              TEXT NOT NULL,
    port              INTEGER NOT NULL CHECK (port > 0 AND port < 65536),
    status            TEXT NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'dead')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT NOT NULL DEFAULT '',
    last_status_code  INTEGER,
    next_attempt_at   DATETIME,
    sent_at           DATETIME,
    job_id            BIGINT REFERENCES jobs (id) ON DELETE SET NULL,
    created_at        DATETIME NOT NULL,
    updated_at        DATETIME NOT NULL
);
CREATE UNIQUE INDEX transfers_report_destination_key ON transfers (report_id, destination);
CREATE INDEX transfers_status_idx ON transfers (status, next_attempt_at);

CREATE TABLE audit_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    occurred_at     DATETIME NOT NULL,
    actor           TEXT NOT NULL,
    actor_user_id   BIGINT REFERENCES users (id) ON DELETE SET NULL,
    action          TEXT NOT NULL,
    entity_type     TEXT NOT NULL,
    entity_id       TEXT NOT NULL DEFAULT '',
    before_json     TEXT,
    after_json      TEXT,
    remote_addr     TEXT NOT NULL DEFAULT '',
    request_id      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_entity_idx ON audit_events (entity_type, entity_id, occurred_at);
CREATE INDEX audit_events_occurred_at_idx ON audit_events (occurred_at);
CREATE INDEX audit_events_actor_idx ON audit_events (actor_user_id, occurred_at);
