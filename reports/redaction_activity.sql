-- title: Redaction activity
-- description: Per team and user and day: calls whose bodies had personal data or secrets redacted, and how many items.
SELECT to_char(date_trunc('day', started_at), 'YYYY-MM-DD') AS day, team_id, user_id,
       count(*) AS calls,
       count(*) FILTER (WHERE redactions > 0) AS calls_with_redactions,
       coalesce(sum(redactions), 0) AS redacted_items
FROM audit.exchanges
WHERE started_at >= $1 AND started_at < $2
GROUP BY 1, team_id, user_id
HAVING sum(redactions) > 0
ORDER BY 1, team_id NULLS FIRST, user_id NULLS FIRST
