-- Warren fleet schema (sqlite dialect; keep in step with the other dialect's 0002_fleet.sql).
-- Platform admins, what a host reports at registration and in every heartbeat, and the
-- sandbox options the REST API stores. Booleans are BIGINT 0/1 (one subset of SQL for both
-- stores, see ARCHITECTURE.md).

-- Platform admin (host routes); set by WARREN_ADMIN_EMAIL / WARREN_ADMIN_PASSWORD at start.
ALTER TABLE users ADD COLUMN is_admin BIGINT NOT NULL DEFAULT 0;

-- Host specs and load, as last reported by the agent.
ALTER TABLE hosts ADD COLUMN arch TEXT;
ALTER TABLE hosts ADD COLUMN free_memory_mb BIGINT;
ALTER TABLE hosts ADD COLUMN free_disk_mb BIGINT;
ALTER TABLE hosts ADD COLUMN live_sandboxes BIGINT NOT NULL DEFAULT 0;
-- JSON array of the template names present on the host.
ALTER TABLE hosts ADD COLUMN templates TEXT NOT NULL DEFAULT '[]';

-- Sandbox options.
ALTER TABLE sandboxes ADD COLUMN allow_internet BIGINT NOT NULL DEFAULT 1;
ALTER TABLE sandboxes ADD COLUMN auto_pause BIGINT NOT NULL DEFAULT 0;
-- envd X-Access-Token of the sandbox (E2B secure sandboxes); NULL = none.
ALTER TABLE sandboxes ADD COLUMN envd_access_token TEXT;
-- JSON object of environment variables given at create.
ALTER TABLE sandboxes ADD COLUMN env TEXT NOT NULL DEFAULT '{}';

CREATE INDEX host_refresh_tokens_replaces_idx ON host_refresh_tokens(replaces_id);
CREATE INDEX sandboxes_status_idx ON sandboxes(status);
