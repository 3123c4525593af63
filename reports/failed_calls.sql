-- title: Failed calls
-- description: Calls that did not end well: provider errors, client errors, gateway errors, and calls cut off (incomplete).
SELECT to_char(started_at, 'YYYY-MM-DD"T"HH24:MI:SS.MSTZH:TZM') AS started_at,
       request_id, chain_id, request_seq, user_id, team_id, api, model, stream, status_code, outcome,
       latency_ms, ttfb_ms
FROM audit.exchanges
WHERE started_at >= $1 AND started_at < $2
  AND outcome IN ('upstream_error', 'client_error', 'gateway_error', 'incomplete')
ORDER BY started_at, chain_id, request_seq
