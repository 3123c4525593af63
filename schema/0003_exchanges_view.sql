-- One row per proxied call: the request record joined to its response record by request_id.
-- A request with no response is `incomplete` (the call was cut off, e.g. by a crash): that is evidence too.
SET LOCAL ROLE auditgate_owner;

CREATE VIEW audit.exchanges AS
SELECT
    q.request_id,
    q.recorded_at                                   AS started_at,
    r.recorded_at                                   AS finished_at,
    q.chain_id,
    q.seq                                           AS request_seq,
    r.seq                                           AS response_seq,
    q.user_id,
    q.team_id,
    q.key_id,
    q.end_user,
    q.client_ip,
    q.api,
    q.method,
    q.path,
    q.provider,
    coalesce(r.model, q.model)                      AS model,
    q.stream,
    r.status_code,
    coalesce(r.outcome, 'incomplete')               AS outcome,
    r.input_tokens,
    r.output_tokens,
    r.cache_read_tokens,
    r.cache_write_tokens,
    r.latency_ms,
    r.ttfb_ms,
    coalesce(q.redactions, 0) + coalesce(r.redactions, 0) AS redactions,
    qb.body                                         AS request_body,
    rb.body                                         AS response_body
FROM audit.events q
LEFT JOIN audit.events r
       ON r.kind = 'response' AND r.request_id = q.request_id AND r.chain_id = q.chain_id
LEFT JOIN audit.bodies qb
       ON qb.chain_id = q.chain_id AND qb.seq = q.seq AND qb.recorded_at = q.recorded_at
LEFT JOIN audit.bodies rb
       ON rb.chain_id = r.chain_id AND rb.seq = r.seq AND rb.recorded_at = r.recorded_at
WHERE q.kind = 'request';

REVOKE ALL ON audit.exchanges FROM PUBLIC;
GRANT SELECT ON audit.exchanges TO auditgate_reader;
