--[[ load_step: apply one staged chunk of a manifest load (scheduler/store/loading.py).

A load is planned in short pipelined reads (scheduler/store/load_plan.py), staged in chunks
under a load id, then applied one chunk per call of this script, each a few milliseconds,
so no call holds Redis long at any manifest size. The first step is the commit point: from
it until the last step the load lock's phase is 'applying', and claim.lua hands out no job,
so no claim ever sees a half-applied manifest; a loader that dies after it is finished by
whoever next finds the lock's lease run out (loading.finish_interrupted_load), from the
staged chunks, so a killed load ends as the old manifest (killed before the first step)
or the new one, never a mix.

KEYS  1 load lock (hash: owner, load, phase, chunks, next, expires, wakeups: load_lock.lua)   2 jobs (zset)
      3 names (hash)   4 in_manifest (set)   5 orphaned (zset)   6 seq (string)
      7 classes (hash)   8 hosts (hash)   9 manifest meta (hash)   10 events (stream)
      11 ids (zset)   12 this step's staged chunk (string)
ARGV  1 the lock owner's token   2 this step's number (0-based)   3 now (epoch seconds)
      4 the lock's lease in seconds   5.. rq job hash template as field, value pairs
The chunk is JSON {now, now_iso, key prefixes, states, classes{id: json}, hosts{name: json},
      unhosts (list), names{name: id}, actions (a list of {kind, job} pairs), meta{name, path,
      digest} (last step only)}
      with kind add | update | revive (job as loading.build_payload makes it) or orphan ({id}).
Returns "next", "done" (the last step: meta written, lock released), "lost" (the lock is not
this load's, or not at this step: another process took it over; nothing written), or the
refusal over a key that turned foreign after planning (nothing of this step written).

Invariants (as the one-script load kept them):
  * A job's state, attempts and history are never changed by a load; a step reads each
    job's state when it writes it, so claims and finishes between steps are respected.
  * Jobs missing from the manifest are flagged orphaned, never deleted; revived if listed again.
  * The pending index holds exactly the jobs that are pending, in the manifest and not
    waiting on dependencies; score = rank + seq (pending.lua).
  * Dependencies: deps:<id> and dependents:<parent> hold the `after` edges; `waits` counts
    a job's distinct parents that have not finished; a new job whose parent failed or was
    canceled starts blocked.
  * A job added or updated with `forked_from` naming a job of the manifest is in that job's
    forks:<id> set (`fleet job` shows the link both ways); the link is never removed.
]]

local LOCK, JOBS, NAMES, INM, ORPH, SEQ, CLASSES, HOSTS, META, EVENTS, IDS, CHUNK =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local lock = redis.call('HMGET', LOCK, 'owner', 'next', 'chunks')
if lock[1] ~= ARGV[1] or tonumber(lock[2]) ~= tonumber(ARGV[2]) then return 'lost' end
local step, chunks = tonumber(ARGV[2]), tonumber(lock[3])
local raw_chunk = redis.call('GET', CHUNK)
if not raw_chunk then
  return redis.error_reply('fleet: the staged chunk ' .. CHUNK .. ' of this load is gone (expired or deleted); ' ..
                           'load the manifest again')
end

local function apply()
  local p = cjson.decode(raw_chunk)
  local S = p.states

  -- #include pending
  -- #include states
  -- #include deps
  -- #include types

  -- Every key this step writes, checked before its first write (load_plan.py checked them all
  -- before the load began; this catches one that turned foreign since, for this step).
  local checked = {}
  local function foreign_once(key, want)
    if checked[key] then return nil end
    checked[key] = true
    return foreign(key, want)
  end
  local current = {}
  local bad = foreign_once(p.heads_key, 'zset') or foreign_once(p.state_prefix .. S.pending, 'zset')
              or foreign_once(p.state_prefix .. S.blocked, 'zset')
  for _, a in ipairs(p.actions) do
    if bad then break end
    local kind, j = a[1], a[2]
    local key = p.job_prefix .. j.id
    bad = foreign_once(key, 'hash')
    if bad then break end
    local cur = redis.call('HMGET', key, 'state', 'class', 'seq', 'name', 'indexed', 'retry_at')
    local c = {state = cur[1], class = cur[2], seq = cur[3], name = cur[4], indexed = cur[5], retry_at = cur[6]}
    current[j.id] = c
    if kind == 'orphan' then
      bad = c.indexed == '1' and foreign_once(p.pending_prefix .. c.class, 'zset')
    else
      bad = foreign_once(p.pending_prefix .. j.class, 'zset')
            or (c.class and foreign_once(p.pending_prefix .. c.class, 'zset'))
            or foreign_once(p.deps_prefix .. j.id, 'set')
            or (kind == 'add' and #ARGV > 4 and foreign_once(p.rq_job_prefix .. j.id, 'hash'))
            or (j.forked_from ~= nil and j.forked_from ~= '' and foreign_once(p.forks_prefix .. j.forked_from, 'set'))
      if not bad then
        for _, old in ipairs(redis.call('SMEMBERS', p.deps_prefix .. j.id)) do
          bad = bad or foreign_once(p.dependents_prefix .. old, 'set')
        end
        for _, parent in ipairs(j.parents) do
          bad = bad or foreign_once(p.dependents_prefix .. parent, 'set') or foreign_once(p.job_prefix .. parent, 'hash')
        end
      end
    end
  end
  if bad then return bad end

  local function index(id, class, rank, seq)
    pending_add(class, pending_score(rank, nil, seq), id)
    redis.call('HSET', p.job_prefix .. id, 'indexed', '1')
  end

  local function rename(id, old, new)
    if old ~= new then
      if old and redis.call('HGET', NAMES, old) == id then redis.call('HDEL', NAMES, old) end
    end
    redis.call('HSET', NAMES, new, id)
  end

  -- (Re)write a job's dependency edges and their kinds; returns how many distinct parents have
  -- not met their edge yet, and one whose edge never can be (deps.lua edge_met) and its kind
  -- (nil if none). A parent listed twice is counted once (SADD returns 0 the second time): it
  -- ends once, and settle_children (deps.lua) takes one off `waits` per end that meets the edge.
  local function set_edges(j)
    local dkey = p.deps_prefix .. j.id
    for _, old in ipairs(redis.call('SMEMBERS', dkey)) do redis.call('SREM', p.dependents_prefix .. old, j.id) end
    redis.call('DEL', dkey)
    local kinds = j.dep_kinds or ''
    if kinds ~= '' then
      redis.call('HSET', p.job_prefix .. j.id, 'dep_kinds', kinds)
    else
      redis.call('HDEL', p.job_prefix .. j.id, 'dep_kinds')
    end
    local waits, stuck, stuck_kind = 0, nil, nil
    for _, parent in ipairs(j.parents) do
      if redis.call('SADD', dkey, parent) == 1 then
        redis.call('SADD', p.dependents_prefix .. parent, j.id)
        local kind = kind_in(kinds, parent)
        local met = edge_met(kind, redis.call('HGET', p.job_prefix .. parent, 'state'))
        if not met then waits = waits + 1 end
        if met == false then stuck, stuck_kind = parent, kind end
      end
    end
    return waits, stuck, stuck_kind
  end

  -- The pending index holds a job iff it is pending, in the manifest, waits on nothing and is
  -- not waiting out a retry delay (a claim indexes it once that is over).
  local function place(id, state, in_manifest, waits, old_class, indexed, class, rank, seq, retry_at)
    if indexed == '1' then pending_remove(old_class, id) end
    local waiting_out = (tonumber(retry_at) or 0) > tonumber(p.now)
    if state == S.pending and in_manifest == '1' and waits == 0 and not waiting_out then
      index(id, class, rank, seq)
      return true
    end
    redis.call('HSET', p.job_prefix .. id, 'indexed', '0')
    return false
  end

  -- `forked_from` naming a job of this manifest: the link `fleet job` shows from the parent's side.
  local function link_fork(j)
    if j.forked_from ~= nil and j.forked_from ~= '' then redis.call('SADD', p.forks_prefix .. j.forked_from, j.id) end
  end

  local function update_spec(j, c)
    local key = p.job_prefix .. j.id
    redis.call('SET', p.spec_prefix .. j.id, j.spec)
    local waits = set_edges(j)
    redis.call('HSET', key, 'name', j.name, 'sched', j.sched, 'class', j.class,
               'priority', j.priority, 'rank', j.rank, 'max_attempts', j.max_attempts, 'waits', waits,
               'updated_at', p.now)
    rename(j.id, c.name, j.name)
    link_fork(j)
    return place(j.id, c.state, '1', waits, c.class, c.indexed, j.class, j.rank, c.seq, c.retry_at)
  end

  local rq_template = {}
  for i = 5, #ARGV do table.insert(rq_template, ARGV[i]) end

  for id, spec in pairs(p.classes) do redis.call('HSET', CLASSES, id, spec) end
  for name, spec in pairs(p.hosts) do redis.call('HSET', HOSTS, name, spec) end
  for _, name in ipairs(p.unhosts) do redis.call('HDEL', HOSTS, name) end

  local wakeups = 0
  for _, a in ipairs(p.actions) do
    local kind, j = a[1], a[2]
    local c = current[j.id]
    local key = p.job_prefix .. j.id
    if kind == 'add' then
      local seq = redis.call('INCR', SEQ)
      local waits, stuck, stuck_kind = set_edges(j)
      local state = stuck and S.blocked or S.pending
      redis.call('SET', p.spec_prefix .. j.id, j.spec)
      move_state(j.id, nil, state, 'id', j.id, 'name', j.name, 'sched', j.sched, 'class', j.class,
                 'priority', j.priority, 'rank', j.rank, 'max_attempts', j.max_attempts, 'waits', waits, 'seq', seq,
                 'attempts', 0, 'in_manifest', '1', 'created_at', p.now, 'indexed', '0')
      if stuck then
        local parent = redis.call('HGET', p.job_prefix .. stuck, 'name') or stuck
        redis.call('HSET', key, 'reason', 'blocked: ' .. parent .. ' ' .. EDGE_WORDS[stuck_kind])
      end
      redis.call('ZADD', JOBS, seq, j.id)
      redis.call('ZADD', IDS, 0, j.id)
      redis.call('SADD', INM, j.id)
      rename(j.id, nil, j.name)
      link_fork(j)
      if place(j.id, state, '1', waits, j.class, '0', j.class, j.rank, seq) then wakeups = wakeups + 1 end
      if #rq_template > 0 then
        local rq_key = p.rq_job_prefix .. j.id
        redis.call('HSET', rq_key, unpack(rq_template))
        redis.call('HSET', rq_key, 'description', j.name, 'created_at', p.now_iso, 'status', 'queued')
      end
    elseif kind == 'update' then
      if update_spec(j, c) then wakeups = wakeups + 1 end
    elseif kind == 'revive' then
      redis.call('HSET', key, 'in_manifest', '1')
      redis.call('SADD', INM, j.id)
      redis.call('ZREM', ORPH, j.id)
      if update_spec(j, c) then wakeups = wakeups + 1 end
    elseif kind == 'orphan' then
      redis.call('HSET', key, 'in_manifest', '0', 'updated_at', p.now)
      redis.call('SREM', INM, j.id)
      redis.call('ZADD', ORPH, p.now, j.id)
      if c.indexed == '1' then
        pending_remove(c.class, j.id)
        redis.call('HSET', key, 'indexed', '0')
      end
    end
  end
  for name, id in pairs(p.names) do redis.call('HSET', NAMES, name, id) end
  if p.meta then
    redis.call('HSET', META, 'name', p.meta.name, 'path', p.meta.path, 'digest', p.meta.digest, 'applied_at', p.now)
  end
  return wakeups
end

local wakeups = apply()
-- The decoded chunk is garbage now: collected here (a chunk's worth, ~1 ms), not left to the
-- incremental collector, which takes a step in every later script call and slowed every
-- claim for a minute after a big load (bench/claim_cost.py).
raw_chunk = nil
collectgarbage('collect')
if type(wakeups) == 'string' then return redis.error_reply(wakeups) end
redis.call('DEL', CHUNK)
local total = redis.call('HINCRBY', LOCK, 'wakeups', wakeups)
if step + 1 >= chunks then
  if total > 0 then
    redis.call('XADD', EVENTS, 'MAXLEN', '~', 1000, '*', 'kind', 'claimable', 'count', total)
  end
  redis.call('DEL', LOCK)
  return 'done'
end
redis.call('HSET', LOCK, 'phase', 'applying', 'next', step + 1,
           'expires', tostring(tonumber(ARGV[3]) + tonumber(ARGV[4])))  -- the first step: the commit point
return 'next'
