--[[ claim: pop the best pending job this worker may run, reserve its resources, take a lease.

KEYS  1 running (zset: job id -> lease deadline)   2 ledger of this worker's host (hash)
      3 classes (hash: class id -> its constraints as JSON)
ARGV  1 JSON {now, lease_s, worker, host, the key prefixes (scheduler/keys.py script_prefixes),
        states{...}, outcomes{...}, counted[] (scheduler/states.py script_names),
        ram_total, cores_total,                      -- the host's capacity
        gpus[{key, total, free}]}                    -- this worker's GPUs; free as probed now
      2 ids of the classes the pure rule already admits for this worker, each followed by a
        comma and the first preceded by one (",a,b,"): one argument, not one each (packing 50
        arguments cost the client more than the claim), searched, not split (splitting 50 ids
        into a table cost a fifth of the claim's time in Redis)
Returns JSON {job_id, attempt, gpu_key, gpu_pos} or {} when nothing fits.

Invariants:
  * Atomic: a job id leaves its pending zset, enters `running` with a lease and its
    record turns running in one step; two workers can never both get it.
  * Nothing half-written: the keys it reads fail before its first write, and each key it
    writes is checked first (types.lua); a foreign one is refused by name, nothing written.
  * The host ledger never exceeds capacity: RAM and cores are checked against
    capacity minus what running fleet jobs on this host reserved; VRAM against
    min(probed free, total - reserved) on one GPU, choosing the smallest that fits.
  * Cost: `heads` (one entry per class with pending jobs) read in pages of 16 until a
    class fits, plus O(log n) for the chosen class; only a class's head is ever examined
    (jobs of a class need the same resources), and the first class in heads order that
    fits holds the best job.
    Class constraints are read from `classes` only for the heads examined: decoding
    every admitted class from the payload cost more than the rest of the claim.
  * The resource check is the same rule as scheduler.matching.resources_reason;
    tests/test_claim_agreement.py proves they agree.
]]

local p = cjson.decode(ARGV[1])
-- #include pending
-- #include states
-- #include types
local RUNNING, LEDGER, CLASSES = KEYS[1], KEYS[2], KEYS[3]
local EPS = 1e-9

local reserved = {}
local raw = redis.call('HGETALL', LEDGER)
for i = 1, #raw, 2 do
  reserved[raw[i]] = tonumber(raw[i + 1])
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

-- Smallest GPU whose free VRAM fits, so big cards stay free for big jobs.
local function best_gpu(vram)
  local best = nil
  for i = 1, #gpu_free do
    if gpu_free[i] + EPS >= vram and (best == nil or gpu_free[i] < gpu_free[best]) then best = i end
  end
  return best
end

-- Classes in the order of their best job (heads), so the first that fits holds the best job
-- this worker may run: reading heads instead of every class's zset.
local WANTED = ARGV[2]
local function wanted(class_id)
  return string.find(WANTED, ',' .. class_id .. ',', 1, true) ~= nil
end

-- A class's needs; nil (never claimed) if its record is missing or not fleet's JSON:
-- a damaged record must never read as "needs nothing".
local function needs(class_id)
  local ok, c = pcall(cjson.decode, redis.call('HGET', CLASSES, class_id) or '')
  if not ok or type(c) ~= 'table' then return nil end
  local ram, cores, vram = tonumber(c.min_ram_gib), tonumber(c.min_cores), tonumber(c.min_vram_gib)
  if not (ram and cores and vram) then return nil end
  return {id = class_id, ram = ram, cores = cores, vram = vram, cuda = c.require_cuda == true}
end

-- Whether class c fits what this worker has left, and on which GPU (nil: none needed).
local function placement(c)
  local gpu = nil
  if c.vram > 0 and (c.cuda or #gpu_free > 0) then
    gpu = best_gpu(c.vram)
    if gpu == nil then return false end
  elseif #gpu_free > 0 and c.cuda then
    gpu = best_gpu(0)
  end
  return c.ram <= free_ram + EPS and c.cores <= free_cores + EPS, gpu
end

-- heads in pages: the best job usually sits in the first few classes, and reading all
-- of heads each claim cost more than the rest of the choice.
local HEADS_PAGE = 16
local chosen_class, chosen_gpu = nil, nil
local start = 0
repeat
  local heads = redis.call('ZRANGE', p.heads_key, start, start + HEADS_PAGE - 1)
  for _, class_id in ipairs(heads) do
    local c = wanted(class_id) and needs(class_id)
    if c then
      local fits, gpu = placement(c)
      if fits then
        chosen_class, chosen_gpu = c, gpu
        break
      end
    end
  end
  start = start + HEADS_PAGE
until chosen_class or #heads < HEADS_PAGE

if chosen_class == nil then return '{}' end
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
local gpu_key = ''
local vram = 0
if chosen_gpu then
  gpu_key = p.gpus[chosen_gpu].key
  vram = chosen_class.vram
end
move_state(chosen, p.states.pending, p.states.running, 'indexed', '0', 'last_worker', p.worker,
           'last_host', p.host, 'res_ram', chosen_class.ram, 'res_cores', chosen_class.cores, 'res_vram', vram,
           'res_gpu', gpu_key, 'lease_attempt', attempt)
-- A zero reservation changes nothing: skipping it spares a write most jobs (min_cores = 0) make.
if chosen_class.ram > 0 then redis.call('HINCRBYFLOAT', LEDGER, 'ram', chosen_class.ram) end
if chosen_class.cores > 0 then redis.call('HINCRBYFLOAT', LEDGER, 'cores', chosen_class.cores) end
if vram > 0 then redis.call('HINCRBYFLOAT', LEDGER, 'vram:' .. gpu_key, vram) end
redis.call('RPUSH', p.attempts_prefix .. chosen, cjson.encode({attempt = attempt, worker = p.worker,
           host = p.host, gpu = gpu_key, started_at = p.now}))
return cjson.encode({job_id = chosen, attempt = attempt, gpu_key = gpu_key, gpu_pos = chosen_gpu or 0})
