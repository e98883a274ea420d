-- The rebuild lease: which `titok rebuild` is rebuilding a projection's group, and until when its
-- lease runs (renewed while it works; a crashed rebuild's lease expires). A second rebuild of the
-- group refuses while the lease is held.
ALTER TABLE projection_meta ADD COLUMN rebuild_by TEXT NOT NULL DEFAULT '';
ALTER TABLE projection_meta ADD COLUMN rebuild_until_ms INTEGER NOT NULL DEFAULT 0;
