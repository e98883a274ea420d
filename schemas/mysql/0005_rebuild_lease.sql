-- The rebuild lease; see sqlite/views/0003_rebuild_lease.sql.
ALTER TABLE projection_meta
    ADD COLUMN rebuild_by VARCHAR(255) NOT NULL DEFAULT '',
    ADD COLUMN rebuild_until_ms BIGINT NOT NULL DEFAULT 0;
