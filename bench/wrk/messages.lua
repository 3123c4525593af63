-- wrk script for bench/gateway.sh: POSTs one small Anthropic Messages call (non-streamed) per
-- request and keeps the x-auditgate-request-id of every response it completes, so the benchmark can
-- check afterwards that each completed call is an exchange in the audit store. Against nginx or the
-- upstream directly there is no such header and nothing is kept; the script runs the same there,
-- so every target pays the same client-side cost.
--   BENCH_KEY  the gateway client key (sent as x-api-key)
--   BENCH_IDS     file to write the request ids to at the end (optional)
--   BENCH_STATUS  file to write "status count" lines to at the end (optional)
wrk.method = "POST"
wrk.body = '{"model":"claude-sonnet-4-6","max_tokens":64,"messages":[{"role":"user","content":"Say hello in five words."}]}'
wrk.headers["content-type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.headers["x-api-key"] = os.getenv("BENCH_KEY") or "none"

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   ids = {}
   count = 0
   statuses = {}
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   local id = headers["x-auditgate-request-id"]
   if id ~= nil and status == 200 then
      count = count + 1
      ids[count] = id
   end
end

function done(summary, latency, requests)
   local path = os.getenv("BENCH_IDS")
   if path ~= nil and path ~= "" then
      local file = assert(io.open(path, "w"))
      for _, thread in ipairs(threads) do
         for _, id in ipairs(thread:get("ids")) do
            file:write(id, "\n")
         end
      end
      file:close()
   end
   path = os.getenv("BENCH_STATUS")
   if path ~= nil and path ~= "" then
      local total = {}
      for _, thread in ipairs(threads) do
         for status, n in pairs(thread:get("statuses")) do
            total[status] = (total[status] or 0) + n
         end
      end
      local file = assert(io.open(path, "w"))
      for status, n in pairs(total) do
         file:write(status, " ", n, "\n")
      end
      file:close()
   end
end
