-- title: Usage by team, user and model
-- description: Calls, outcomes, tokens and latency percentiles per team, user and model over the period.
SELECT team_id, user_id, model,
       count(*) AS calls,
       count(*) FILTER (WHERE outcome = 'ok') AS ok,
       count(*) FILTER (WHERE outcome IN ('upstream_error', 'client_error', 'gateway_error', 'incomplete')) AS errors,
       count(*) FILTER (WHERE outcome = 'denied') AS denials,
       coalesce(sum(input_tokens), 0) AS input_tokens,
       coalesce(sum(output_tokens), 0) AS output_tokens,
       coalesce(sum(cache_read_tokens), 0) AS cache_read_tokens,
       coalesce(sum(cache_write_tokens), 0) AS cache_write_tokens,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)::numeric, 1) AS latency_p50_ms,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)::numeric, 1) AS latency_p95_ms,
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms)::numeric, 1) AS latency_p99_ms
FROM audit.exchanges
WHERE started_at >= $1 AND started_at < $2
GROUP BY team_id, user_id, model
ORDER BY team_id NULLS FIRST, user_id NULLS FIRST, model NULLS FIRST
