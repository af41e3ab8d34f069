-- authgate's shared store, version 1 (the redb store's schema 4, table for table).
-- Applied by authgate at start (or `authgate migrate`) in one serializable transaction,
-- inside the schema named by `store.schema` (search_path is set to it).
-- Portable SQL: no extensions, no PL/pgSQL, types CockroachDB and YugabyteDB also have.
-- Secrets are only ever stored as sha256 (BYTEA keys); records are JSON text, as in redb.

CREATE TABLE IF NOT EXISTS clients (
    client_id   TEXT PRIMARY KEY,
    record      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    -- NULL until a grant is issued: registrations never used are swept.
    first_used_at BIGINT
);

CREATE TABLE IF NOT EXISTS codes (
    hash        BYTEA PRIMARY KEY,
    record      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);

-- Redeemed codes -> the grant they created, to detect replays.
CREATE TABLE IF NOT EXISTS used_codes (
    hash        BYTEA PRIMARY KEY,
    grant_id    TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS grants (
    grant_id    TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    record      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS grants_by_client ON grants (client_id);

CREATE TABLE IF NOT EXISTS access_tokens (
    hash        BYTEA PRIMARY KEY,
    grant_id    TEXT NOT NULL,
    record      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS access_by_grant ON access_tokens (grant_id);
CREATE INDEX IF NOT EXISTS access_by_expiry ON access_tokens (expires_at);

CREATE TABLE IF NOT EXISTS refresh_tokens (
    hash        BYTEA PRIMARY KEY,
    grant_id    TEXT NOT NULL,
    record      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    -- End of the grace window of the sealed retry answer kept in `record`, if any.
    successor_until BIGINT
);
CREATE INDEX IF NOT EXISTS refresh_by_grant ON refresh_tokens (grant_id);
CREATE INDEX IF NOT EXISTS refresh_by_expiry ON refresh_tokens (expires_at);

-- Single-use claims (hash of the claimed key) -> when the claim may be forgotten.
CREATE TABLE IF NOT EXISTS claims (
    hash        BYTEA PRIMARY KEY,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS consents (
    consent_key TEXT PRIMARY KEY,
    record      TEXT NOT NULL
);

-- provider:subject -> the person's record.
CREATE TABLE IF NOT EXISTS users (
    user_id     TEXT PRIMARY KEY,
    record      TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS blocked_users (
    user_id     TEXT PRIMARY KEY,
    since       BIGINT NOT NULL
);

-- Values every replica shares (sealed by the gateway where they must not be readable from a
-- copy of the database): the token tag key, identity signing keys, upstream registrations.
CREATE TABLE IF NOT EXISTS secrets (
    name        TEXT PRIMARY KEY,
    value       BYTEA NOT NULL
);

CREATE TABLE IF NOT EXISTS api_keys (
    name        TEXT PRIMARY KEY,
    record      TEXT NOT NULL
);
