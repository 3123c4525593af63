-- Records the store refuses as text, kept as the exact bytes their hash covers, so that one record can
-- never hold back the chain behind it. The gateway makes every text field storable before it seals a
-- record (docs/canonical-encoding.md, "Text the store can hold"), so nothing lands here in normal
-- operation; what does is a record sealed by an older build (a U+0000 in a field) or a future bug.
-- The shipper puts a record here only when PostgreSQL refuses that one record's data (SQLSTATE classes
-- 22 and 54), after shipping the records before it; verifiers read both tables in seq order.
SET LOCAL ROLE auditgate_owner;

CREATE TABLE audit.unstorable_records (
    chain_id    text        NOT NULL,
    seq         bigint      NOT NULL CHECK (seq >= 1),
    recorded_at timestamptz NOT NULL,
    -- The record's canonical encoding, exactly the bytes hashed after prev_hash.
    canonical   bytea       NOT NULL,
    -- The body as kept (its SHA-256 is the record's body_sha256), as bytes; NULL when none is kept.
    body        bytea,
    prev_hash   bytea       NOT NULL,
    hash        bytea       NOT NULL,
    -- The SQLSTATE PostgreSQL refused the record with (e.g. 22021), never the values themselves.
    refused_with text       NOT NULL,
    PRIMARY KEY (chain_id, seq)
);

CREATE TRIGGER unstorable_append_only BEFORE UPDATE OR DELETE ON audit.unstorable_records
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER unstorable_no_truncate BEFORE TRUNCATE ON audit.unstorable_records
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();

REVOKE ALL ON audit.unstorable_records FROM PUBLIC;
GRANT INSERT ON audit.unstorable_records TO auditgate_writer;
GRANT SELECT ON audit.unstorable_records TO auditgate_reader;

-- A chain's head is its highest seq in either table.
CREATE OR REPLACE FUNCTION audit.chain_head(p_chain_id text) RETURNS TABLE (seq bigint, hash bytea)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, audit AS $$
    SELECT h.seq, h.hash FROM (
        (SELECT e.seq, e.hash FROM audit.events e WHERE e.chain_id = p_chain_id ORDER BY e.seq DESC LIMIT 1)
        UNION ALL
        (SELECT u.seq, u.hash FROM audit.unstorable_records u WHERE u.chain_id = p_chain_id ORDER BY u.seq DESC LIMIT 1)
    ) h ORDER BY h.seq DESC LIMIT 1
$$;
