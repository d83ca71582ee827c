-- wrk script shared by etcd and kvnode, so both see the same workload:
-- keys "key-0000".."key-9999" picked with math.random, 128-byte values.
--
--   wrk ... -s kv.lua URL -- SYSTEM OP THREADS [MARKER]
--   SYSTEM: etcd | kvnode     OP: put | get | preload
--
-- put/get: one random key per request. preload: every key once (thread t
-- of THREADS owns the keys k with k % THREADS == t); once all its keys were
-- acknowledged a thread creates the file MARKER<t> and stops. wrk's main
-- thread still sleeps out -d, so run.sh waits for the markers and ends wrk
-- with SIGINT, on which it reports as usual.
--
-- Every non-2xx answer counts as an error: wrk itself counts only >= 400
-- and would take a redirect (a follower answering) as a success. An etcd
-- range that finds no value answers 200 without "kvs"; that is a "miss"
-- (kvnode answers 404, an error), so a run without preloaded keys shows.
-- done() prints one RESULT line that run.sh parses; latencies are in µs.

local NKEYS, VALUE_SIZE = 10000, 128

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
-- etcd's JSON gateway takes keys and values as base64 (protobuf bytes).
local function b64(s)
  return ((s:gsub(".", function(c)
    local bits, b = "", c:byte()
    for i = 8, 1, -1 do bits = bits .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
    return bits
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return b64chars:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#s % 3 + 1])
end

-- setup() runs in the main Lua state, once per thread: number the threads
-- and keep them, so done() can add up their counters.
local threads, next_id = {}, 0
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local system, op, nthreads, marker
local reqs = {}   -- prebuilt request per key: no string work per call
-- errors and misses are globals: done() reads them with thread:get().
errors, misses = 0, 0
local acked, cursor, owned = 0, 0, 0

function init(args)
  system, op, nthreads, marker = args[1], args[2], tonumber(args[3] or "1"), args[4]
  assert(system == "etcd" or system == "kvnode", "SYSTEM must be etcd or kvnode")
  assert(op == "put" or op == "get" or op == "preload", "OP must be put, get or preload")
  math.randomseed(os.time() * 1000 + tid)
  -- A fixed printable value of VALUE_SIZE bytes (the same for both systems).
  local value = string.rep("0123456789abcdef", VALUE_SIZE / 16)
  local value64 = b64(value)
  local is_put = op ~= "get"
  for k = 0, NKEYS - 1 do
    local key = string.format("key-%04d", k)
    local r
    if system == "etcd" and is_put then
      r = wrk.format("POST", "/v3/kv/put", { ["Content-Type"] = "application/json" },
        '{"key":"' .. b64(key) .. '","value":"' .. value64 .. '"}')
    elseif system == "etcd" then
      -- serializable defaults to false: a linearizable read.
      r = wrk.format("POST", "/v3/kv/range", { ["Content-Type"] = "application/json" },
        '{"key":"' .. b64(key) .. '"}')
    elseif is_put then
      r = wrk.format("PUT", "/kv/" .. key, { ["Content-Type"] = "application/octet-stream" }, value)
    else
      -- no ?stale=true: kvnode's linearizable read (read_index at the leader).
      r = wrk.format("GET", "/kv/" .. key)
    end
    reqs[k] = r
  end
  if op == "preload" then
    for k = tid, NKEYS - 1, nthreads do owned = owned + 1 end
    cursor = tid
  end
end

function request()
  if op == "preload" then
    local k = cursor
    cursor = cursor + nthreads
    if cursor >= NKEYS then cursor = tid end   -- wrap: re-put until stopped
    return reqs[k]
  end
  return reqs[math.random(0, NKEYS - 1)]
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    errors = errors + 1
  elseif op == "get" and system == "etcd" and not body:find('"kvs"', 1, true) then
    misses = misses + 1
  elseif op == "preload" then
    acked = acked + 1
    if acked == owned then
      if marker then io.open(marker .. tid, "w"):close() end
      wrk.thread:stop()
    end
  end
end

function done(summary, latency, requests)
  local errs, miss = 0, 0
  for _, t in ipairs(threads) do
    errs = errs + t:get("errors")
    miss = miss + t:get("misses")
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d errors=%d misses=%d socket_errors=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), errs, miss,
    e.connect + e.read + e.write + e.timeout))
end
