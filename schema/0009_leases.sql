-- The holdings of a named lease (issue 15 point 2, docs/scaling.md "ingestd failover").
--
-- The lease itself is a PostgreSQL session advisory lock (common/store/cc_lease.c), which a
-- PostgreSQL restart or a dropped connection takes away from the active ingestd. Each new
-- holding counts itself here (epoch + 1), so an active that finds its lock gone can take it
-- again and, seeing the epoch it counted, know that no other ingestd held the lease in
-- between: it goes on instead of exiting. SQLite has no such lock (one box: an flock); the
-- table is here so that both schemas stay equal.
CREATE TABLE leases (
    name  TEXT    PRIMARY KEY,
    epoch INTEGER NOT NULL
);
