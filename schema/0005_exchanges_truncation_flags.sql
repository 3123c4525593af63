-- audit.exchanges gains request_body_truncated and response_body_truncated (issue 11): a body kept in
-- part is flagged, never silently cut. Columns are only appended, so the view is replaced in place.
SET LOCAL ROLE auditgate_owner;

CREATE OR REPLACE VIEW audit.exchanges AS
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
    rb.body                                         AS response_body,
    -- Whether the kept copy of a body is shorter than the body that crossed the gateway. The record's
    -- detail holds the whole body's length and SHA-256 either way. (The pattern cannot match text
    -- inside a detail value: quotes there are escaped.)
    coalesce(q.detail LIKE '%"body_truncated":true%', false) AS request_body_truncated,
    coalesce(r.detail LIKE '%"body_truncated":true%', false) AS response_body_truncated
FROM audit.events q
LEFT JOIN audit.events r
       ON r.kind = 'response' AND r.request_id = q.request_id AND r.chain_id = q.chain_id
LEFT JOIN audit.bodies qb
       ON qb.chain_id = q.chain_id AND qb.seq = q.seq AND qb.recorded_at = q.recorded_at
LEFT JOIN audit.bodies rb
       ON rb.chain_id = r.chain_id AND rb.seq = r.seq AND rb.recorded_at = r.recorded_at
WHERE q.kind = 'request';
