-- The journal's records and their bodies, created as the owner role.
SET LOCAL ROLE auditgate_owner;

-- One row per record (request or response). Every column but prev_hash and hash enters the
-- canonical encoding (docs/canonical-encoding.md); the body enters it as body_sha256.
CREATE TABLE audit.events (
    chain_id           text        NOT NULL,
    seq                bigint      NOT NULL CHECK (seq >= 1),
    recorded_at        timestamptz NOT NULL,
    kind               text        NOT NULL CHECK (kind IN ('request', 'response')),
    request_id         text        NOT NULL,
    user_id            text,
    team_id            text,
    key_id             text,
    end_user           text,
    client_ip          text,
    api                text,
    method             text,
    path               text,
    provider           text,
    model              text,
    stream             boolean,
    status_code        integer,
    outcome            text CHECK (outcome IN ('ok', 'upstream_error', 'client_error', 'denied', 'gateway_error', 'incomplete')),
    input_tokens       bigint,
    output_tokens      bigint,
    cache_read_tokens  bigint,
    cache_write_tokens bigint,
    latency_ms         bigint,
    ttfb_ms            bigint,
    redactions         integer,
    body_sha256        text,
    detail             text,
    prev_hash          bytea       NOT NULL,
    hash               bytea       NOT NULL,
    PRIMARY KEY (chain_id, seq, recorded_at)
) PARTITION BY RANGE (recorded_at);

CREATE INDEX events_recorded_at_idx ON audit.events (recorded_at);
CREATE INDEX events_user_time_idx ON audit.events (user_id, recorded_at);
CREATE INDEX events_request_idx ON audit.events (request_id, chain_id);
-- Rows outside every monthly partition still land somewhere rather than failing the shipper.
CREATE TABLE audit.events_default PARTITION OF audit.events DEFAULT;

-- Bodies apart from metadata, so they can be kept for a shorter period.
CREATE TABLE audit.bodies (
    chain_id    text        NOT NULL,
    seq         bigint      NOT NULL,
    recorded_at timestamptz NOT NULL,
    body        text        NOT NULL,
    PRIMARY KEY (chain_id, seq, recorded_at)
) PARTITION BY RANGE (recorded_at);
CREATE TABLE audit.bodies_default PARTITION OF audit.bodies DEFAULT;

-- Append-only, for every role including superusers (who can only get around it by disabling the
-- triggers, which the hash chain then exposes).
CREATE FUNCTION audit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only: % on %.% is refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON audit.events
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON audit.events
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER bodies_append_only BEFORE UPDATE OR DELETE ON audit.bodies
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER bodies_no_truncate BEFORE TRUNCATE ON audit.bodies
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
-- Statement triggers are not inherited by partitions: each partition gets its own TRUNCATE guard.
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON audit.events_default
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON audit.bodies_default
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();

-- Monthly partitions from last month to `months_ahead` months ahead, with their TRUNCATE guards.
-- A month whose rows already sit in the default partition is left there (reported as skipped).
CREATE FUNCTION audit.ensure_partitions(months_ahead integer DEFAULT 12) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, audit AS $$
DECLARE
    month_start date := (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '1 month')::date;
    created integer := 0;
    parent text;
    part text;
    has_rows boolean;
BEGIN
    FOR i IN 0..(months_ahead + 1) LOOP
        FOREACH parent IN ARRAY ARRAY['events', 'bodies'] LOOP
            part := format('%s_y%sm%s', parent, to_char(month_start, 'YYYY'), to_char(month_start, 'MM'));
            CONTINUE WHEN to_regclass('audit.' || part) IS NOT NULL;
            IF EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                       WHERE n.nspname = 'audit' AND c.relname = parent || '_default') THEN
                EXECUTE format('SELECT EXISTS (SELECT 1 FROM audit.%I WHERE recorded_at >= %L::timestamptz AND recorded_at < %L::timestamptz)',
                               parent || '_default', month_start::text || ' 00:00:00+00',
                               (month_start + interval '1 month')::date::text || ' 00:00:00+00')
                    INTO has_rows;
                CONTINUE WHEN has_rows;
            END IF;
            EXECUTE format('CREATE TABLE audit.%I PARTITION OF audit.%I FOR VALUES FROM (%L) TO (%L)',
                           part, parent, month_start::text || ' 00:00:00+00',
                           (month_start + interval '1 month')::date::text || ' 00:00:00+00');
            EXECUTE format('CREATE TRIGGER no_truncate BEFORE TRUNCATE ON audit.%I FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change()', part);
            created := created + 1;
        END LOOP;
        month_start := (month_start + interval '1 month')::date;
    END LOOP;
    RETURN created;
END
$$;

-- What resuming a chain needs, and nothing else: the writer cannot SELECT the tables.
CREATE FUNCTION audit.chain_head(p_chain_id text) RETURNS TABLE (seq bigint, hash bytea)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, audit AS $$
    SELECT e.seq, e.hash FROM audit.events e WHERE e.chain_id = p_chain_id ORDER BY e.seq DESC LIMIT 1
$$;

REVOKE ALL ON audit.events, audit.bodies, audit.events_default, audit.bodies_default FROM PUBLIC;
REVOKE ALL ON FUNCTION audit.ensure_partitions(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION audit.chain_head(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION audit.refuse_change() FROM PUBLIC;
GRANT INSERT ON audit.events, audit.bodies TO auditgate_writer;
GRANT SELECT ON audit.events, audit.bodies TO auditgate_reader;
GRANT EXECUTE ON FUNCTION audit.chain_head(text) TO auditgate_writer, auditgate_reader;
GRANT EXECUTE ON FUNCTION audit.ensure_partitions(integer) TO auditgate_writer;

SELECT audit.ensure_partitions(12);
