-- coldchain_temp_q without STRICT, so that the planner inlines it (issue 14, ingest cost).
--
-- 0001 declared it STRICT. PostgreSQL inlines a STRICT SQL function only when it can prove
-- the body returns NULL for a NULL argument, and a CASE is never proven so: every call of
-- the batch insert (schema/pg/ingest.sql, one per stored reading) then ran the body as a
-- function of its own, with an executor started and stopped per row. Measured on the
-- pgtest cluster: 100,000 calls 282-515 ms as a function, 37 ms as the inlined expression,
-- i.e. 3-5 ms of server CPU per batch of 1,000 readings. The result is unchanged: the body
-- already gives NULL for a NULL t (the IN and abs() tests are NULL, so the ELSE branch
-- runs, and trunc(NULL) is NULL), which is what STRICT did; readings.temperature is
-- NOT NULL anyway. test_store_pg.c checks that the function is inlined (no nested plan
-- under auto_explain) and test_pg_schema.py its results against cc_query_temp_q.
CREATE OR REPLACE FUNCTION coldchain_temp_q(t double precision) RETURNS bigint
LANGUAGE sql IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE AS $$
    SELECT CASE
        WHEN t IN ('NaN', 'Infinity', '-Infinity') OR abs(t) > 1e9 THEN 0
        ELSE (trunc(t * 1048576::double precision)
              + CASE WHEN abs(t * 1048576::double precision - trunc(t * 1048576::double precision)) >= 0.5
                     THEN sign(t) ELSE 0 END)::bigint
    END
$$;

INSERT INTO schema_migrations (version, name, applied_at)
VALUES (5, '0005_temp_q_inline', floor(extract(epoch FROM statement_timestamp()) * 1000)::bigint);
