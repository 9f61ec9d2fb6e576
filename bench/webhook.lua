-- wrk script: POST pre-signed WhatsApp webhooks from a file made by bench/make_bodies.py.
--
--   wrk -t2 -c100 -d10s --latency -s bench/webhook.lua URL -- FILE START COUNT THREADS [BLOCK]
--
-- FILE holds fixed-width lines "sha256=<hex> <body>". Thread t sends records
-- START + (k*THREADS + t)*BLOCK ... + BLOCK-1 for k = 0, 1, 2, ..., so the threads never
-- send the same record and a run consumes a contiguous range. Past START+COUNT a thread
-- wraps around to its first block and counts a wrap: for the gateway that would mean
-- duplicates, and the driver (bench/ingest.py) gives each run enough fresh records.
-- done() prints one line "WRK_JSON {...}" with the summary, latency percentiles and the
-- per-thread counters, which the driver parses.

local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

function init(args)
   file = assert(io.open(args[1], "rb"))
   first = tonumber(args[2])
   count = tonumber(args[3])
   nthreads = tonumber(args[4])
   block = tonumber(args[5] or "256")
   local line = file:read("*l")
   width = #line + 1
   k = 0          -- blocks this thread has loaded
   pos = block    -- records used from the current block
   buf = nil
   sent, wraps, blocks = 0, 0, 0
   ok, non2xx, stored, dup = 0, 0, 0, 0
   headers = {["Content-Type"] = "application/json"}
end

local function next_record()
   if pos >= block then
      local rec = first + (k * nthreads + id) * block
      if rec + block > first + count then
         k = 0
         wraps = wraps + 1
         rec = first + id * block
      end
      file:seek("set", rec * width)
      buf = file:read(block * width)
      k = k + 1
      if k > blocks then blocks = k end
      pos = 0
   end
   local off = pos * width
   pos = pos + 1
   return buf:sub(off + 1, off + 71), buf:sub(off + 73, off + width - 1)
end

function request()
   local sig, body = next_record()
   headers["X-Hub-Signature-256"] = sig
   sent = sent + 1
   return wrk.format("POST", nil, headers, body)
end

function response(status, hdrs, body)
   if status >= 200 and status < 300 then
      ok = ok + 1
      if body and string.find(body, '"stored": 1', 1, true) then
         stored = stored + 1
      elseif body and string.find(body, '"duplicates": 1', 1, true) then
         dup = dup + 1
      end
   else
      non2xx = non2xx + 1
   end
end

function done(summary, latency, requests)
   local per = {}
   local tot = {sent = 0, wraps = 0, ok = 0, non2xx = 0, stored = 0, dup = 0, max_blocks = 0}
   for _, t in ipairs(threads) do
      local row = {}
      for _, key in ipairs({"sent", "wraps", "ok", "non2xx", "stored", "dup", "blocks"}) do
         row[key] = t:get(key) or 0
      end
      for _, key in ipairs({"sent", "wraps", "ok", "non2xx", "stored", "dup"}) do
         tot[key] = tot[key] + row[key]
      end
      if row.blocks > tot.max_blocks then tot.max_blocks = row.blocks end
      table.insert(per, string.format(
         '{"sent":%d,"wraps":%d,"ok":%d,"non2xx":%d,"stored":%d,"dup":%d,"blocks":%d}',
         row.sent, row.wraps, row.ok, row.non2xx, row.stored, row.dup, row.blocks))
   end
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"duration_us":%d,"requests":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p75":%d,"p90":%d,"p99":%d,"p999":%d},' ..
      '"lua":{"sent":%d,"wraps":%d,"ok":%d,"non2xx":%d,"stored":%d,"dup":%d,"max_blocks":%d,' ..
      '"block":%d,"threads":[%s]}}\n',
      summary.duration, summary.requests, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency.stdev, latency.max,
      latency:percentile(50), latency:percentile(75), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9),
      tot.sent, tot.wraps, tot.ok, tot.non2xx, tot.stored, tot.dup, tot.max_blocks,
      threads[1] and threads[1]:get("block") or 0, table.concat(per, ",")))
end
