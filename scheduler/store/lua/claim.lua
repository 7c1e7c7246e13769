--[[ claim: pop the best pending job this worker may run, reserve its resources, take a lease.

KEYS  1 running (zset: job id -> lease deadline)   2 ledger of this worker's host (hash)
      3 classes (hash: class id -> its constraints as JSON)
ARGV  1 JSON {now, lease_s, worker, host, the key prefixes (scheduler/keys.py script_prefixes),
        states{...}, outcomes{...}, counted[] (scheduler/states.py script_names),
        ram_total, cores_total,                      -- the host's capacity
        gpus[{key, total, free, island, switch}]}    -- this worker's GPUs; free as probed now;
                                                     -- island, switch: the lowest index of its
                                                     -- NVLink island, of its PCIe switch group
      2 ids of the classes the pure rule already admits for this worker, each followed by a
        comma and the first preceded by one (",a,b,"): one argument, not one each (packing 50
        arguments cost the client more than the claim), searched, not split (splitting 50 ids
        into a table cost a fifth of the claim's time in Redis). A class that accepts only some
        kinds of GPU (gpu_names, min_compute_capability) is followed by which of this worker's
        GPUs it accepts, one '0' or '1' each (",a/0110,b,"): kinds are the pure rule's business.
Returns JSON {job_id, attempt, gpu_keys, gpu_pos} (the reserved GPUs' ledger keys and their
1-based positions, each comma-separated, "" for none), {} when nothing fits ({retry_in =
seconds until the soonest retry delay ends} while a job waits out one), or {fenced =
the load lock's expiry} while a manifest load is being applied (nothing is handed out).

Invariants:
  * Atomic: a job id leaves its pending zset, enters `running` with a lease and its
    record turns running in one step; two workers can never both get it.
  * Nothing half-written: the keys it reads fail before its first write, and each key it
    writes is checked first (types.lua); a foreign one is refused by name, nothing written.
    (Putting due retries back in the pending index comes first and is whole on its own: a
    refusal after it leaves those jobs claimable, as they should be, and the claim unmade.)
  * The host ledger never exceeds capacity: RAM and cores are checked against
    capacity minus what running fleet jobs on this host reserved. A job gets `gpus` GPUs
    (scheduler.matching.gpu_count): sharing ones (min_vram_gib > 0) each with
    min(probed free, total - reserved) >= min_vram_gib, the smallest that fit; whole ones
    (min_vram_gib = 0) with nothing reserved, the smallest first, and it reserves each
    whole (its total), so no sharing job fits beside it.
  * Cost: `heads` (one entry per class with pending jobs) read in pages of 16 until a
    class fits, plus O(log n) for the chosen class; only a class's head is ever examined
    (jobs of a class need the same resources), and the first class in heads order that
    fits holds the best job.
    Class constraints are read from `classes` only for the heads examined: decoding
    every admitted class from the payload cost more than the rest of the claim.
  * Wide jobs are not starved: the first class in heads order this worker may run that
    does not fit for want of free GPUs is held for (scheduler/reservation.py): later
    classes start only beside its planned GPUs, RAM and cores, or anywhere if their
    timeout_s ends before it could start. The ledger's 'hold:<class>' field names it, and
    it stays first among classes of its priority or lower until it starts here, leaves
    the queue or stops waiting for GPUs. The plan reads the ledger's 'end:<job>:<gpu
    keys>' fields, each running GPU job's expected end (0: no timeout_s), which this
    script writes and finish.lua deletes with the job's reservation.
  * A job whose last attempt failed or was lost here goes to another host first, while one
    that could run it is idle and for avoid_until (finish.lua) at most: its class is passed
    over this claim (HTCondor's job_machine_attrs, Slurm's requeue with --exclude, made soft).
  * The resource check, the GPU choice and the hold are the same rule as
    scheduler.matching.resources_reason and choose_gpus and scheduler.reservation.choose;
    tests/test_claim_agreement.py and tests/test_reservation.py prove they agree.
]]

local p = cjson.decode(ARGV[1])
-- A manifest load past its commit point and not yet done (load_step.lua): the store is half
-- the old manifest and half the new, so nothing is handed out until it is whole again.
local load = redis.call('HMGET', p.load_lock, 'phase', 'expires')
if load[1] == 'applying' then return cjson.encode({fenced = tonumber(load[2]) or 0}) end
local S = p.states
-- #include pending
-- #include states
-- #include deps
-- #include types
local RUNNING, LEDGER, CLASSES = KEYS[1], KEYS[2], KEYS[3]
local EPS = 1e-9

-- Jobs whose retry delay is over (finish.lua listed them in retry_wait) go back to the pending
-- index first, a few per claim: on the happy path this is one read of an empty zset.
local RETRY_PROMOTE = 16
local due = redis.pcall('ZRANGEBYSCORE', p.retry_wait_key, '-inf', p.now, 'LIMIT', 0, RETRY_PROMOTE)
if type(due) == 'table' and due.err then return redis.error_reply(foreign(p.retry_wait_key, 'zset') or due.err) end
for _, id in ipairs(due) do
  redis.call('ZREM', p.retry_wait_key, id)
  if not foreign(p.job_prefix .. id, 'hash') then
    redis.call('HDEL', p.job_prefix .. id, 'retry_at')
    index_if_ready(id)
  end
end

local reserved = {}
local held_class, hold_fields = nil, {}
local gpu_holders = {}  -- 'end:<job>:<gpu keys>' fields: a running GPU job's expected end (0: unknown)
local raw = redis.call('HGETALL', LEDGER)
for i = 1, #raw, 2 do
  reserved[raw[i]] = tonumber(raw[i + 1])
  if string.sub(raw[i], 1, 4) == 'end:' and reserved[raw[i]] then
    gpu_holders[#gpu_holders + 1] = {gpus = string.match(raw[i], '^end:[^:]*:(.*)$') or '', ends = reserved[raw[i]]}
  elseif string.sub(raw[i], 1, 5) == 'hold:' then
    hold_fields[#hold_fields + 1] = raw[i]
    held_class = held_class or string.sub(raw[i], 6)  -- the class this host holds for (it sticks: see below)
  end
  -- Checked before any write: HINCRBYFLOAT would fail on it after the job left pending.
  if reserved[raw[i]] == nil then
    return redis.error_reply('fleet: ledger ' .. LEDGER .. ' field ' .. raw[i] .. ' is not a number; no worker ' ..
                             'of this host can claim until it is fixed: delete the field if no job runs there')
  end
end
local free_ram = p.ram_total - (reserved['ram'] or 0)
local free_cores = p.cores_total - (reserved['cores'] or 0)
local gpu_free = {}
for i, g in ipairs(p.gpus) do
  gpu_free[i] = math.min(g.free, g.total - (reserved['vram:' .. g.key] or 0))
end

-- Classes in the order of their best job (heads), so the first that fits holds the best job
-- this worker may run: reading heads instead of every class's zset.
local WANTED = ARGV[2]
-- Whether this worker may run class_id (false) and, if so, which kinds of its GPUs ('' for all).
local function wanted(class_id)
  local _, e = string.find(WANTED, ',' .. class_id, 1, true)
  if e == nil then return false end
  local next_char = string.sub(WANTED, e + 1, e + 1)
  if next_char == ',' then return '' end
  if next_char ~= '/' then return false end
  return string.sub(WANTED, e + 2, (string.find(WANTED, ',', e + 2, true) or 0) - 1)
end

-- A class's needs; nil (never claimed) if its record is missing or not fleet's JSON:
-- a damaged record must never read as "needs nothing".
local function needs(class_id)
  local ok, c = pcall(cjson.decode, redis.call('HGET', CLASSES, class_id) or '')
  if not ok or type(c) ~= 'table' then return nil end
  local ram, cores, vram = tonumber(c.min_ram_gib), tonumber(c.min_cores), tonumber(c.min_vram_gib)
  if not (ram and cores and vram) then return nil end
  local gpus = nil
  if c.gpus ~= nil then
    gpus = tonumber(c.gpus)
    if gpus == nil then return nil end
  end
  return {id = class_id, ram = ram, cores = cores, vram = vram, cuda = c.require_cuda == true,
          prefer = c.prefer_cuda == true, gpus = gpus, timeout = tonumber(c.timeout_s) or 0}
end

-- scheduler.matching.gpu_count: `gpus` where set, else 1 for a job that runs on a GPU here.
local function gpu_count(c)
  if c.gpus then return c.gpus end
  if c.cuda then return 1 end
  if #gpu_free > 0 and (c.vram > 0 or c.prefer) then return 1 end
  return 0
end

-- The positions of the GPUs class c gets now, ascending ({} for none), or nil: too few free.
-- `held`: positions kept for a held job (scheduler/reservation.py), which it may not take.
local function choose_gpus(c, kinds, held)
  local n = gpu_count(c)
  if n == 0 then return {} end
  local fit = {}
  for i = 1, #gpu_free do
    if (kinds == '' or string.sub(kinds, i, i) == '1') and not (held and held[i]) then
      if c.vram > 0 then
        if gpu_free[i] + EPS >= c.vram then fit[#fit + 1] = i end
      elseif (reserved['vram:' .. p.gpus[i].key] or 0) <= EPS then
        fit[#fit + 1] = i
      end
    end
  end
  if #fit < n then return nil end
  if n == 1 and #fit == 1 then return fit end
  if c.vram > 0 then  -- least free VRAM that fits first, so big cards stay free for big jobs
    table.sort(fit, function(a, b) if gpu_free[a] ~= gpu_free[b] then return gpu_free[a] < gpu_free[b] end
                                   return a < b end)
  else  -- whole: the smallest cards first, for the same reason
    table.sort(fit, function(a, b) local ta, tb = p.gpus[a].total, p.gpus[b].total
                                   if ta ~= tb then return ta < tb end return a < b end)
  end
  local chosen = {}
  if n > 1 then  -- inside one NVLink island, else one PCIe switch group: that of the best-ranked GPU that has enough
    for _, level in ipairs({'island', 'switch'}) do
      for _, first in ipairs(fit) do
        local group = p.gpus[first][level]
        for _, i in ipairs(fit) do
          if p.gpus[i][level] == group and #chosen < n then chosen[#chosen + 1] = i end
        end
        if #chosen == n then break end
        chosen = {}
      end
      if #chosen == n then break end
    end
  end
  if #chosen < n then
    chosen = {}
    for k = 1, n do chosen[k] = fit[k] end
  end
  table.sort(chosen)
  return chosen
end

-- Whether class c fits what this worker has left (less what a hold keeps), and on which GPUs.
local function placement(c, kinds, hold)
  local ram, cores = free_ram, free_cores
  if hold then ram, cores = ram - hold.ram, cores - hold.cores end
  if c.ram > ram + EPS or c.cores > cores + EPS then return false end
  local gpus = choose_gpus(c, kinds, hold and hold.gpus)
  return gpus ~= nil, gpus
end

-- scheduler.reservation.plan_hold: what this host keeps for class c, which does not fit now,
-- or nil when c is not waiting for GPUs here. Its planned GPUs are those that free soonest
-- (free ones first; a GPU frees when all its holders' timeouts ran out, a holder without
-- timeout_s may end any moment); start_at is when the last of them frees at the latest.
local function plan_hold(c, kinds)
  local n = gpu_count(c)
  if n == 0 or c.ram > p.ram_total + EPS or c.cores > p.cores_total + EPS then return nil end
  local usable, free_now = {}, 0
  local function free_for(i)
    if c.vram > 0 then return gpu_free[i] + EPS >= c.vram end
    return (reserved['vram:' .. p.gpus[i].key] or 0) <= EPS
  end
  for i = 1, #gpu_free do
    if (kinds == '' or string.sub(kinds, i, i) == '1') and (c.vram <= 0 or p.gpus[i].total + EPS >= c.vram) then
      usable[#usable + 1] = i
      if free_for(i) then free_now = free_now + 1 end
    end
  end
  if #usable < n or free_now >= n then return nil end
  local at, busy = {}, {}
  for _, i in ipairs(usable) do
    local t = p.now
    busy[i] = not free_for(i)
    if busy[i] then
      local key = p.gpus[i].key
      for _, h in ipairs(gpu_holders) do
        if h.ends > t and string.find(',' .. h.gpus .. ',', ',' .. key .. ',', 1, true) then t = h.ends end
      end
    end
    at[i] = t
  end
  -- Free ones first among equals: a holder that may end any moment still holds its GPU now.
  table.sort(usable, function(a, b)
    if at[a] ~= at[b] then return at[a] < at[b] end
    if busy[a] ~= busy[b] then return not busy[a] end
    return a < b
  end)
  local hold = {class_id = c.id, gpus = {}, ram = c.ram, cores = c.cores, start_at = p.now}
  for k = 1, n do
    hold.gpus[usable[k]] = true
    if at[usable[k]] > hold.start_at then hold.start_at = at[usable[k]] end
  end
  return hold
end

-- Whether the best job of class_id should go to another host first: its last attempt failed
-- or was lost on this one (finish.lua set avoid_host and avoid_until), the window is open, and
-- another idle worker on another host offered for the class (the preference board). Read only
-- for a class that fits, and the job's record only past the cheap test of its head.
local BOARD_SCAN = 16
local function avoided(class_id)
  local head = redis.call('ZRANGE', p.pending_prefix .. class_id, 0, 0)[1]
  if not head then return false end
  local f = redis.pcall('HMGET', p.job_prefix .. head, 'avoid_host', 'avoid_until')
  if f.err then return false end  -- a foreign record: the claim's own checks below refuse it by name
  if f[1] ~= p.host or not ((tonumber(f[2]) or 0) > p.now) then return false end
  local board = redis.pcall('ZREVRANGE', p.prefer_prefix .. class_id, 0, BOARD_SCAN - 1)
  if type(board) ~= 'table' or board.err then return false end
  for _, other in ipairs(board) do
    if other ~= p.worker then
      local said = tonumber(redis.pcall('ZSCORE', p.idle_key, other))
      if said and said >= p.now - p.idle_fresh_s then
        local raw = redis.pcall('HGET', p.worker_prefix .. other, 'resources')
        local ok, res = pcall(cjson.decode, type(raw) == 'string' and raw or '')
        if ok and type(res) == 'table' and res.hostname ~= p.host then return true end
      end
    end
  end
  return false
end

-- heads in pages: the best job usually sits in the first few classes, and reading all
-- of heads each claim cost more than the rest of the choice.
local HEADS_PAGE = 16
local chosen_class, chosen_gpus = nil, nil
local hold = nil  -- what the host keeps for the best job it cannot start yet (scheduler/reservation.py)
-- A hold sticks: the class this host holds for goes before every class of its priority or a
-- lower one while it is queued, wanted here and still waits for GPUs, so a wider job arriving
-- later cannot take the GPUs it was promised; a class of a higher priority still comes first.
-- Priority levels as scheduler.queue_order.priority_level reads them from a score.
local PRIORITY_STEP = 3.4e12
local kept = nil
if held_class then
  local score = redis.call('ZSCORE', p.heads_key, held_class)
  local kinds = score and wanted(held_class)
  local c = kinds and needs(held_class)
  if c then kept = {c = c, kinds = kinds, level = math.floor(tonumber(score) / PRIORITY_STEP)} end
end
local start = 0
repeat
  local heads = redis.call('ZRANGE', p.heads_key, start, start + HEADS_PAGE - 1, 'WITHSCORES')
  for h = 1, #heads, 2 do
    local class_id, level = heads[h], math.floor(tonumber(heads[h + 1]) / PRIORITY_STEP)
    if kept and level >= kept.level then
      local first = kept
      kept = nil
      if hold == nil then  -- nothing of a higher priority holds: the kept class goes first
        local fits, gpus = placement(first.c, first.kinds)
        if fits and avoided(first.c.id) then fits = false end
        if fits then
          chosen_class, chosen_gpus = first.c, gpus
          break
        end
        hold = plan_hold(first.c, first.kinds)
      end
    end
    local kinds = (not hold or hold.class_id ~= class_id) and wanted(class_id)
    local c = kinds and needs(class_id)
    if c then
      local fits, gpus
      if hold == nil then
        fits, gpus = placement(c, kinds)
        if not fits then hold = plan_hold(c, kinds) end
      else  -- beside the hold, or anywhere if it ends (timeout_s) before the held job could start
        if c.timeout > 0 and p.now + c.timeout <= hold.start_at + EPS then fits, gpus = placement(c, kinds) end
        if not fits then fits, gpus = placement(c, kinds, hold) end
      end
      if fits and avoided(c.id) then fits = false end  -- left to the other host, not held for
      if fits then
        chosen_class, chosen_gpus = c, gpus
        break
      end
    end
  end
  start = start + HEADS_PAGE
until chosen_class or #heads < 2 * HEADS_PAGE

-- The hold this claim respects is the one the ledger names from now on (types checked with
-- the ledger's fields above; a number, as every ledger field).
local now_held = hold and hold.class_id or nil
for _, field in ipairs(hold_fields) do
  if field ~= 'hold:' .. (now_held or '') then redis.call('HDEL', LEDGER, field) end
end
if now_held and held_class ~= now_held then redis.call('HSET', LEDGER, 'hold:' .. now_held, p.now) end
if chosen_class == nil then
  -- The soonest retry delay to end, so an idle worker looks again then (worker/claim.py).
  local soonest = redis.call('ZRANGE', p.retry_wait_key, 0, 0, 'WITHSCORES')
  if soonest[2] then return cjson.encode({retry_in = tonumber(soonest[2]) - p.now}) end
  return '{}'
end
-- Every key written below is checked before the first write (types.lua), except the job's
-- record, which the first write checks itself: a refused HINCRBY has written nothing.
local chosen = redis.call('ZRANGE', p.pending_prefix .. chosen_class.id, 0, 0)[1]
if chosen == nil then return redis.error_reply('fleet: heads lists class ' .. chosen_class.id .. ' with no pending job') end
local bad = foreign(RUNNING, 'zset') or foreign(p.attempts_prefix .. chosen, 'list')
            or foreign(p.state_prefix .. p.states.pending, 'zset') or foreign(p.state_prefix .. p.states.running, 'zset')
if bad then return redis.error_reply(bad) end
local key = p.job_prefix .. chosen
local attempt = redis.pcall('HINCRBY', key, 'attempts', 1)
if type(attempt) == 'table' then return redis.error_reply(foreign(key, 'hash') or attempt.err) end
pending_pop(chosen_class.id)
redis.call('ZADD', RUNNING, p.now + p.lease_s, chosen)
-- Each GPU's key and what the job reserves on it (min_vram_gib, or all of it when held whole),
-- comma-separated in the job's record so that finish.lua gives back exactly that.
local gpu_keys, gpu_vram, gpu_pos = {}, {}, {}
for k, i in ipairs(chosen_gpus) do
  gpu_keys[k] = p.gpus[i].key
  gpu_vram[k] = chosen_class.vram > 0 and chosen_class.vram or p.gpus[i].total
  gpu_pos[k] = i
end
local res_gpu, res_vram = table.concat(gpu_keys, ','), table.concat(gpu_vram, ',')
if res_vram == '' then res_vram = '0' end
move_state(chosen, p.states.pending, p.states.running, 'indexed', '0', 'last_worker', p.worker,
           'last_host', p.host, 'res_ram', chosen_class.ram, 'res_cores', chosen_class.cores, 'res_vram', res_vram,
           'res_gpu', res_gpu, 'lease_attempt', attempt)
-- A zero reservation changes nothing: skipping it spares a write most jobs (min_cores = 0) make.
if chosen_class.ram > 0 then redis.call('HINCRBYFLOAT', LEDGER, 'ram', chosen_class.ram) end
if chosen_class.cores > 0 then redis.call('HINCRBYFLOAT', LEDGER, 'cores', chosen_class.cores) end
for k, key in ipairs(gpu_keys) do
  if gpu_vram[k] > 0 then redis.call('HINCRBYFLOAT', LEDGER, 'vram:' .. key, gpu_vram[k]) end
end
-- When its GPUs free at the latest, for a hold's plan (0: no timeout_s, it may end any moment);
-- finish.lua deletes it with the reservation.
if res_gpu ~= '' then
  redis.call('HSET', LEDGER, 'end:' .. chosen .. ':' .. res_gpu,
             chosen_class.timeout > 0 and (p.now + chosen_class.timeout) or 0)
end
redis.call('RPUSH', p.attempts_prefix .. chosen, cjson.encode({attempt = attempt, worker = p.worker,
           host = p.host, gpu = res_gpu, cores = chosen_class.cores, started_at = p.now}))
return cjson.encode({job_id = chosen, attempt = attempt, gpu_keys = res_gpu, gpu_pos = table.concat(gpu_pos, ',')})
