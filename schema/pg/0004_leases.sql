-- The holdings of a named lease: schema/0009_leases.sql says why (an active ingestd that
-- lost its advisory lock to a PostgreSQL restart takes it again and goes on when no other
-- ingestd held it in between).
CREATE TABLE leases (
    name  text   PRIMARY KEY,
    epoch bigint NOT NULL
);

INSERT INTO schema_migrations (version, name, applied_at)
VALUES (4, '0004_leases', floor(extract(epoch FROM statement_timestamp()) * 1000)::bigint);
