--[[ finish: end attempts, either one reported by its worker or every expired lease (the reaper).

KEYS  1 running (zset: job id -> lease deadline)   2 reaper tick (string)   3 events (stream)
ARGV  1 JSON {mode = "complete" | "reap", now, lease_s, the key prefixes (scheduler/keys.py
        script_prefixes), states{...}, outcomes{...}, counted[] (scheduler/states.py script_names),
        -- complete: job_id, attempt, worker, outcome, exit_code, reason, output_dir,
        --           summary (result.json as a JSON string, or ""), result_key,
        --           resumed_from (the earlier attempt it resumed from, or null)
        -- reap: limit, every_s (how often this reaper ticks)}
Outcomes: finished | failed | timeout | crashed | lost | interrupted | canceled
Returns JSON {ended = [{job_id, state, outcome}], stale = n, grace = seconds every lease was pushed back,
        shifted = how many leases that was,
        damaged = [why each expired lease whose keys hold foreign values was left as it is]};
        a refused "complete" (a key it would write holds a foreign value) is an error reply
        starting 'fleet: ' that names the key, with nothing written.

Invariants:
  * Nothing half-written: every key an attempt's end writes is checked first (types.lua).
  * Fenced: an attempt ends only if the job is still running under that very
    attempt number (and worker, for "complete"). A worker whose lease was reaped
    and whose job was claimed again cannot overwrite the new attempt.
  * failed, timeout, crashed and lost count against max_attempts; the job returns
    to pending (same FIFO seq) until they run out, then it is failed for good. Such a
    return waits out the job's retry delay (retry_delay below) out of the pending index,
    listed in retry_wait; claim.lua puts it back once due.
    interrupted (warm stop forced) returns it to pending without counting.
  * The host ledger gets back exactly what the claim reserved, and loses the job's expected end.
  * Every ended attempt is listed in the history zset by when it ended (`fleet history`).
  * Leases age only while reapers see Redis. Reapers are the receiver (every second) and
    every worker (idle: every second; busy: every lease renewal). After they fell silent
    for more than two ticks of the one that ran last (Redis unreachable or BUSY for
    everyone, or no fleet process running), every lease is pushed back by the whole
    silence: a worker could not renew during it either, and must not lose its job to an
    outage of any length.
    A dead worker's job is then recovered that much later. (Pushing back only the
    silence beyond one tick left a live worker no margin with 3 s leases.)
]]

local p = cjson.decode(ARGV[1])
local S, O = p.states, p.outcomes

-- #include pending
-- #include states
-- #include deps
-- #include types

local RUNNING, TICK, EVENTS = KEYS[1], KEYS[2], KEYS[3]
local COUNTED = {}  -- outcomes that use up one of max_attempts (scheduler/states.py COUNTED_OUTCOMES)
for _, o in ipairs(p.counted) do COUNTED[o] = true end

-- "a,b" as {"a", "b"}; nil or "" as {}. A job's res_gpu and res_vram list its GPUs this way
-- (claim.lua), one entry for a job on one GPU, as records written before multi-GPU jobs hold.
local function split_commas(text)
  local out = {}
  if not text or text == '' then return out end
  for item in string.gmatch(text, '[^,]+') do out[#out + 1] = item end
  return out
end

local function release(host, fields, job_id)
  if not host or host == '' then return end
  local ledger = p.ledger_prefix .. host
  local function give_back(field, amount)
    amount = tonumber(amount) or 0
    if amount ~= 0 then
      local left = tonumber(redis.call('HINCRBYFLOAT', ledger, field, -amount))
      if math.abs(left) < 1e-6 then redis.call('HDEL', ledger, field) end
    end
  end
  give_back('ram', fields.res_ram)
  give_back('cores', fields.res_cores)
  local amounts = split_commas(fields.res_vram)
  for k, gpu in ipairs(split_commas(fields.res_gpu)) do give_back('vram:' .. gpu, amounts[k]) end
  if fields.res_gpu and fields.res_gpu ~= '' then  -- its expected end (claim.lua), for holds
    redis.call('HDEL', ledger, 'end:' .. job_id .. ':' .. fields.res_gpu)
  end
end

-- How long a job that just lost an attempt waits before it may be claimed again: its spec's
-- retry_delay_s (else the built-in default), doubled per failed attempt up to the cap (or the
-- job's own base, if bigger), stretched by the jitter. The spec is read only on this path.
local function retry_delay(job_id, failures, seq)
  local base = tonumber(p.retry_delay_s) or 0
  local raw = redis.pcall('GET', p.spec_prefix .. job_id)
  if type(raw) == 'string' then
    local ok, doc = pcall(cjson.decode, raw)
    if ok and type(doc) == 'table' and type(doc.spec) == 'table' and tonumber(doc.spec.retry_delay_s) then
      base = tonumber(doc.spec.retry_delay_s)
    end
  end
  if base <= 0 then return 0 end
  local delay = math.min(base * 2 ^ math.max(failures - 1, 0), math.max(p.retry_delay_cap_s, base))
  -- One random number per call, spread over the jobs a reap ends by their load order (golden ratio).
  local spread = ((tonumber(p.jitter) or 0.5) + (tonumber(seq) or 0) * 0.6180339887) % 1
  return delay * (1 - p.retry_jitter + 2 * p.retry_jitter * spread)
end

-- The first key end_attempt would write that holds a value fleet did not write (types.lua), or
-- nil: checked before its first write, so a refused end leaves the job exactly as it was.
local function damaged(job_id, cur, new_state, record)
  local bad = foreign(RUNNING, 'zset') or foreign(EVENTS, 'stream') or foreign(p.heads_key, 'zset')
              or foreign(p.retry_wait_key, 'zset')
              or foreign(p.state_prefix .. S.running, 'zset') or foreign(p.state_prefix .. new_state, 'zset')
              or foreign(p.pending_prefix .. (cur.class or ''), 'zset')
              or foreign(p.dependents_prefix .. job_id, 'set')
  if bad then return bad end
  if record and not pcall(cjson.decode, record) then
    return 'fleet: attempt record ' .. (tonumber(cur.lease_attempt) or '?') .. ' in ' .. p.attempts_prefix .. job_id ..
           ' is not fleet\'s JSON'
  end
  if cur.host and cur.host ~= '' then
    local ledger = p.ledger_prefix .. cur.host
    bad = foreign(ledger, 'hash')
    if bad then return bad end
    local fields = {'ram', 'cores'}
    for _, gpu in ipairs(split_commas(cur.res_gpu)) do table.insert(fields, 'vram:' .. gpu) end
    for _, field in ipairs(fields) do
      local v = redis.call('HGET', ledger, field)
      if v and not tonumber(v) then return 'fleet: ledger ' .. ledger .. ' field ' .. field .. ' is not a number' end
    end
  end
  if new_state == S.finished or new_state == S.failed or new_state == S.canceled then
    -- its children's records are written too (deps.lua settle_children)
    for _, child in ipairs(redis.call('SMEMBERS', p.dependents_prefix .. job_id)) do
      bad = foreign(p.job_prefix .. child, 'hash')
      if bad then return bad end
    end
  end
  return nil
end

-- Ends one attempt; returns its {job_id, state, outcome}, or nil and why not: nil alone when the
-- attempt is no longer the job's running one (fenced), nil and a refusal when a key is damaged.
local function end_attempt(job_id, attempt, worker, outcome, exit_code, reason, output_dir, resumed_from)
  local key = p.job_prefix .. job_id
  local bad = foreign(key, 'hash') or foreign(p.attempts_prefix .. job_id, 'list') or foreign(p.history_key, 'zset')
  if bad then return nil, bad end
  local f = redis.call('HMGET', key, 'state', 'lease_attempt', 'last_worker', 'last_host', 'res_ram',
                       'res_cores', 'res_vram', 'res_gpu', 'failures', 'max_attempts', 'in_manifest', 'waits',
                       'class', 'priority', 'seq', 'cancel_requested')
  local cur = {state = f[1], lease_attempt = f[2], worker = f[3], host = f[4], res_ram = f[5], res_cores = f[6],
               res_vram = f[7], res_gpu = f[8], failures = tonumber(f[9]) or 0, max_attempts = tonumber(f[10]) or 3,
               in_manifest = f[11], waits = tonumber(f[12]) or 0, class = f[13], priority = f[14], seq = f[15],
               cancel_requested = f[16] == '1'}
  if cur.state ~= S.running or tostring(cur.lease_attempt) ~= tostring(attempt)
     or (worker ~= '' and cur.worker ~= worker) then
    return nil
  end
  local failures = cur.failures
  if COUNTED[outcome] then failures = failures + 1 end
  local new_state
  if outcome == O.finished then
    new_state = S.finished
  elseif outcome == O.canceled then
    new_state = S.canceled
  elseif cur.cancel_requested then
    new_state = S.canceled  -- an operator's cancel outranks a retry the attempt would have earned
  elseif outcome == O.interrupted or failures < cur.max_attempts then
    new_state = S.pending
  else
    new_state = S.failed
  end
  local akey = p.attempts_prefix .. job_id
  local raw = redis.call('LINDEX', akey, tonumber(attempt) - 1)
  bad = damaged(job_id, cur, new_state, raw)
  if bad then return nil, bad end
  release(cur.host, cur, job_id)
  redis.call('ZREM', RUNNING, job_id)
  -- A retry waits out its delay (retry_at, and the retry_wait zset a claim reads to put it back).
  -- (Written only then: a past retry_at is inert, and most jobs never need the field.)
  local delay = (new_state == S.pending and COUNTED[outcome]) and retry_delay(job_id, failures, cur.seq) or 0
  move_state(job_id, S.running, new_state, 'failures', failures, 'last_outcome', outcome, 'reason', reason or '',
             'res_ram', 0, 'res_cores', 0, 'res_vram', 0, 'res_gpu', '')
  if delay > 0 then
    redis.call('HSET', p.job_prefix .. job_id, 'retry_at', p.now + delay)
    redis.call('ZADD', p.retry_wait_key, p.now + delay, job_id)
  end
  -- Its next attempt prefers another host than the one this failed or lost attempt ran on
  -- (claim.lua avoided), for a while after it is claimable again.
  if new_state == S.pending and COUNTED[outcome] and cur.host and cur.host ~= '' then
    redis.call('HSET', p.job_prefix .. job_id, 'avoid_host', cur.host, 'avoid_until', p.now + delay + p.avoid_grace_s)
  end
  local indexed = index_if_ready(job_id)  -- back in the pending index if pending, listed and not waiting
  if raw then
    local rec = cjson.decode(raw)
    rec.ended_at = p.now
    rec.outcome = outcome
    if exit_code ~= nil and exit_code ~= cjson.null then rec.exit_code = exit_code end
    if reason and reason ~= '' then rec.reason = reason end
    if output_dir and output_dir ~= '' then rec.output_dir = output_dir end
    if type(resumed_from) == 'number' then rec.resumed_from = resumed_from end
    redis.call('LSET', akey, tonumber(attempt) - 1, cjson.encode(rec))
  end
  redis.call('ZADD', p.history_key, p.now, job_id .. ':' .. attempt)  -- `fleet history` reads windows of it
  if (new_state == S.finished or new_state == S.failed or new_state == S.canceled)
     and settle_children(job_id, new_state) > 0 then
    indexed = true
  end
  -- Resources came back on this host, and maybe a job became claimable again.
  redis.call('XADD', EVENTS, 'MAXLEN', '~', 1000, '*', 'kind', indexed and 'claimable' or 'freed',
             'host', cur.host or '')
  return {job_id = job_id, state = new_state, outcome = outcome}
end

local result = {ended = {}, stale = 0, grace = 0, damaged = {}}
if p.mode == 'complete' then
  local ended, bad = end_attempt(p.job_id, p.attempt, p.worker, p.outcome, p.exit_code, p.reason, p.output_dir,
                                 p.resumed_from)
  if bad then return redis.error_reply(bad) end
  if ended and p.summary ~= '' then
    local akey = p.attempts_prefix .. p.job_id
    local rec = cjson.decode(redis.call('LINDEX', akey, tonumber(p.attempt) - 1))
    rec.summary = cjson.decode(p.summary)
    redis.call('LSET', akey, tonumber(p.attempt) - 1, cjson.encode(rec))
    if ended.state == S.finished then redis.call('SET', p.result_key, p.summary) end
  end
  if ended then table.insert(result.ended, ended) else result.stale = 1 end
  return cjson.encode(result)
end

-- reap
local bad = foreign(TICK, 'string') or foreign(RUNNING, 'zset')
if bad then return redis.error_reply(bad) end
-- The tick says when the last reaper ran and how often it runs ("<now> <every_s>"; a bare
-- number as written before), so a gap is judged by the promise of the one that ran last.
local last, last_every = string.match(redis.call('GET', TICK) or '', '^(%S+) ?(%S*)$')
last, last_every = tonumber(last), tonumber(last_every) or p.every_s
redis.call('SET', TICK, string.format('%.17g %.17g', p.now, p.every_s))
if last and p.now - last > 2 * last_every then
  local shift = p.now - last
  local leases = redis.call('ZRANGE', RUNNING, 0, -1, 'WITHSCORES')
  for i = 1, #leases, 2 do
    redis.call('ZADD', RUNNING, 'XX', tonumber(leases[i + 1]) + shift, leases[i])
  end
  result.grace = shift
  result.shifted = #leases / 2
end
local expired = redis.call('ZRANGEBYSCORE', RUNNING, '-inf', p.now, 'LIMIT', 0, p.limit)
for _, id in ipairs(expired) do
  local attempt = foreign(p.job_prefix .. id, 'hash') == nil and redis.call('HGET', p.job_prefix .. id, 'lease_attempt')
  local ended, refused = end_attempt(id, attempt or '', '', O.lost, nil, 'lease expired: worker stopped heartbeating')
  if ended then
    table.insert(result.ended, ended)
  elseif refused then
    table.insert(result.damaged, refused)  -- left as it is; every other expired lease is still reaped
  else
    redis.call('ZREM', RUNNING, id)  -- a lease with no running job behind it
    result.stale = result.stale + 1
  end
end
return cjson.encode(result)
