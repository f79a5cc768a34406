-- Warren control-plane schema, PostgreSQL dialect. Keep in step with ../sqlite/0001_init.sql:
-- same tables, columns, constraint names and meanings. Ids are UUID strings, times are
-- unix milliseconds (BIGINT), JSON documents are TEXT.

CREATE TABLE teams (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    email           TEXT NOT NULL,
    name            TEXT,
    password_hash   TEXT NOT NULL,
    default_team_id TEXT REFERENCES teams(id) ON DELETE SET NULL,
    created_at      BIGINT NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email)
);

CREATE TABLE users_teams (
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    team_id     TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, team_id)
);
CREATE INDEX users_teams_team_idx ON users_teams(team_id);

CREATE TABLE team_api_keys (
    id            TEXT PRIMARY KEY,
    team_id       TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    key_hash      TEXT NOT NULL,
    key_prefix    TEXT NOT NULL,
    created_by    TEXT REFERENCES users(id) ON DELETE SET NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    CONSTRAINT team_api_keys_hash_key UNIQUE (key_hash)
);
CREATE INDEX team_api_keys_team_idx ON team_api_keys(team_id);

CREATE TABLE hosts (
    id                 TEXT PRIMARY KEY,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'online', 'unreachable', 'draining', 'deleted')),
    address            TEXT,
    runtime            TEXT CHECK (runtime IN ('gvisor', 'firecracker')),
    cpu_count          BIGINT,
    memory_mb          BIGINT,
    disk_mb            BIGINT,
    sandbox_capacity   BIGINT,
    labels             TEXT NOT NULL DEFAULT '{}',
    agent_version      TEXT,
    last_heartbeat_at  BIGINT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX hosts_status_idx ON hosts(status);

CREATE TABLE host_registration_tokens (
    id          TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL,
    host_id     TEXT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    created_by  TEXT REFERENCES users(id) ON DELETE SET NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    created_at  BIGINT NOT NULL,
    CONSTRAINT host_registration_tokens_hash_key UNIQUE (token_hash)
);

CREATE TABLE host_refresh_tokens (
    id           TEXT PRIMARY KEY,
    host_id      TEXT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL,
    replaces_id  TEXT REFERENCES host_refresh_tokens(id) ON DELETE SET NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    created_at   BIGINT NOT NULL,
    CONSTRAINT host_refresh_tokens_hash_key UNIQUE (token_hash)
);
CREATE INDEX host_refresh_tokens_host_idx ON host_refresh_tokens(host_id);

CREATE TABLE templates (
    id          TEXT PRIMARY KEY,
    team_id     TEXT REFERENCES teams(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('image', 'snapshot')),
    status      TEXT NOT NULL CHECK (status IN ('building', 'ready', 'error', 'deleted')),
    size_bytes  BIGINT,
    vcpus       BIGINT,
    memory_mb   BIGINT,
    source_sandbox_id TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
-- team_id NULL = public (platform) template.
CREATE INDEX templates_team_idx ON templates(team_id);

CREATE TABLE sandboxes (
    id            TEXT PRIMARY KEY,
    team_id       TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    host_id       TEXT REFERENCES hosts(id) ON DELETE SET NULL,
    template_id   TEXT REFERENCES templates(id) ON DELETE SET NULL,
    template      TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'running', 'paused', 'stopped', 'missing', 'error')),
    vcpus         BIGINT NOT NULL,
    memory_mb     BIGINT NOT NULL,
    disk_mb       BIGINT,
    metadata      TEXT NOT NULL DEFAULT '{}',
    timeout_secs  BIGINT,
    expires_at    BIGINT,
    error         TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    started_at    BIGINT,
    stopped_at    BIGINT
);
CREATE INDEX sandboxes_team_idx ON sandboxes(team_id, status);
CREATE INDEX sandboxes_host_idx ON sandboxes(host_id, status);
