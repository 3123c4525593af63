-- title: Denied calls
-- description: Every call the gateway refused (missing, unknown or revoked key, or not allowed), with who and from where.
SELECT to_char(started_at, 'YYYY-MM-DD"T"HH24:MI:SS.MSTZH:TZM') AS started_at,
       request_id, chain_id, request_seq, client_ip, key_id, user_id, team_id, api, method, path, status_code
FROM audit.exchanges
WHERE started_at >= $1 AND started_at < $2 AND outcome = 'denied'
ORDER BY started_at, chain_id, request_seq
