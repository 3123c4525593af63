-- title: Monthly access review
-- description: Per user: when and how the LLM APIs were used, denials, errors, off-hours and weekend use, source addresses. Evidence of the monthly access-log inspection (개인정보의 안전성 확보조치 기준 제8조 월 1회 점검, ISMS-P 2.9.4/2.9.5) and of PCI DSS 10.4 log review. Reviewer and conclusion columns are left for the reviewer to fill.
SELECT coalesce(user_id, '(unidentified)') AS user_id,
       string_agg(DISTINCT team_id, ' ' ORDER BY team_id) AS teams,
       count(*) AS calls,
       count(*) FILTER (WHERE outcome = 'denied') AS denials,
       count(*) FILTER (WHERE outcome IN ('upstream_error', 'client_error', 'gateway_error', 'incomplete')) AS errors,
       count(*) FILTER (WHERE extract(hour FROM started_at) < 8 OR extract(hour FROM started_at) >= 20) AS off_hours_calls,
       count(*) FILTER (WHERE extract(isodow FROM started_at) >= 6) AS weekend_calls,
       count(DISTINCT client_ip) AS distinct_client_ips,
       string_agg(DISTINCT client_ip, ' ' ORDER BY client_ip) AS client_ips,
       count(DISTINCT model) AS distinct_models,
       coalesce(sum(input_tokens), 0) + coalesce(sum(output_tokens), 0) AS tokens,
       coalesce(sum(redactions), 0) AS redacted_items,
       to_char(min(started_at), 'YYYY-MM-DD"T"HH24:MI:SSTZH:TZM') AS first_call,
       to_char(max(started_at), 'YYYY-MM-DD"T"HH24:MI:SSTZH:TZM') AS last_call,
       '' AS reviewed_by,
       '' AS review_conclusion
FROM audit.exchanges
WHERE started_at >= $1 AND started_at < $2
GROUP BY coalesce(user_id, '(unidentified)')
ORDER BY denials DESC, off_hours_calls DESC, user_id
