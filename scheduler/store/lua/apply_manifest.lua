--[[ apply_manifest: make the store match a validated manifest, atomically.

KEYS  1 jobs (zset)   2 names (hash)   3 in_manifest (set)   4 orphaned (zset)
      5 seq (string)  6 classes (hash) 7 hosts (hash)        8 manifest meta (hash)
      9 events (stream) 10 ids (zset, lexicographic)
ARGV  1 JSON payload: {now, now_iso, dry_run, allow_orphaning, the key prefixes (scheduler/keys.py
        script_prefixes), states{...} (scheduler/states.py script_names), manifest{name,path,digest},
        hosts{name: json}, classes{id: json},
        jobs[{id, name, class, priority, rank (a decimal string: exact, where cjson numbers
        keep 14 digits), sched, spec, max_attempts, parents[]}]}
        (spec is the JSON {"spec": ..., "identity": ...} stored at spec_prefix .. id)
      2.. rq job hash template as field, value pairs (binary safe: rq's pickled data)
Returns JSON {added[], updated[], unchanged[], orphaned[], revived[]} of job ids, plus
        refused = {orphaned, listed} when the load would orphan too much (see the invariants;
        nothing written), or {error = "..."} with nothing written.

Invariants:
  * Phase 1 only reads; every foreign or corrupt value is reported before phase 2
    writes anything, so a failed load never leaves a half-written store.
  * A job's state, attempts and history are never changed by a load: finished
    stays finished. Only scheduling fields (name, priority, rank, class, spec) update.
  * Jobs missing from the manifest are flagged orphaned (kept, out of the pending
    index), never deleted; a later load that lists them again revives them.
  * Unless allow_orphaning, a load that would orphan every job in_manifest lists (at
    least one), or 10 or more that are over half of them, is refused before any write
    (a truncated or empty manifest must not retire the fleet); dry_run reports it.
  * An unchanged load performs no write at all.
  * The pending index holds exactly the jobs that are pending, in the manifest,
    and not waiting on dependencies; score = rank + seq (pending.lua).
  * Dependencies: deps:<id> and dependents:<parent> hold the `after` edges; a job's
    `waits` counts its distinct parents that have not finished (a parent listed twice
    counts once); a new job whose parent has failed or was canceled starts blocked.
]]

-- The whole load is one function so that everything it decoded is garbage once it returns.
local function apply()
  local p = cjson.decode(ARGV[1])
  ARGV[1] = ''  -- the payload text too: ARGV stays referenced until the next script call
  local S = p.states
  local JOBS, NAMES, INM, ORPH, SEQ, CLASSES, HOSTS, META, EVENTS, IDS =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]

  -- #include pending
  -- #include states
  -- #include types

  -- Phase 1: read and verify ------------------------------------------------------
  local expected = {[JOBS]='zset', [NAMES]='hash', [INM]='set', [ORPH]='zset', [SEQ]='string',
                    [CLASSES]='hash', [HOSTS]='hash', [META]='hash', [EVENTS]='stream', [IDS]='zset'}
  for key, want in pairs(expected) do
    local bad = foreign(key, want)
    if bad then return cjson.encode({error = bad}) end
  end

  local known_state = {}
  for _, v in pairs(S) do known_state[v] = true end

  local actions = {}     -- {kind, job, current}
  local plan = {added = {}, updated = {}, unchanged = {}, orphaned = {}, revived = {}}
  local desired = {}
  for _, j in ipairs(p.jobs) do
    desired[j.id] = true
    local key = p.job_prefix .. j.id
    local t = redis.call('TYPE', key)['ok']
    if t ~= 'none' and t ~= 'hash' then
      return cjson.encode({error = 'key ' .. key .. ' holds a ' .. t .. ', not a fleet job record'})
    end
    if t == 'none' then
      table.insert(actions, {'add', j})
      table.insert(plan.added, j.id)
    else
      local cur = redis.call('HMGET', key, 'sched', 'state', 'class', 'priority', 'seq', 'in_manifest', 'name',
                             'indexed', 'rank')
      if not cur[2] or not known_state[cur[2]] or not tonumber(cur[5]) or not tonumber(cur[4]) then
        return cjson.encode({error = 'job record ' .. key .. ' is corrupt (state ' .. tostring(cur[2]) ..
                             '); restore it from backup or delete it'})
      end
      local c = {sched = cur[1], state = cur[2], class = cur[3], priority = cur[4], seq = cur[5],
                 in_manifest = cur[6], name = cur[7], indexed = cur[8], rank = cur[9]}
      if c.in_manifest == '0' then
        table.insert(actions, {'revive', j, c})
        table.insert(plan.revived, j.id)
      elseif c.sched ~= j.sched or c.rank ~= j.rank then  -- no rank: stored before ranks existed
        table.insert(actions, {'update', j, c})
        table.insert(plan.updated, j.id)
      else
        table.insert(plan.unchanged, j.id)
      end
    end
  end

  for _, id in ipairs(redis.call('SMEMBERS', INM)) do
    if not desired[id] then
      local key = p.job_prefix .. id
      local t = redis.call('TYPE', key)['ok']
      if t ~= 'hash' and t ~= 'none' then
        return cjson.encode({error = 'key ' .. key .. ' holds a ' .. t .. ', not a fleet job record (its id is in ' ..
                             INM .. ')'})
      end
      local cur = redis.call('HMGET', key, 'state', 'class', 'indexed')
      table.insert(actions, {'orphan', {id = id}, {state = cur[1], class = cur[2], indexed = cur[3]}})
      table.insert(plan.orphaned, id)
    end
  end

  local orphans = #plan.orphaned
  if orphans > 0 and not p.allow_orphaning then
    local listed = redis.call('SCARD', INM)
    if orphans == listed or (orphans >= 10 and 2 * orphans > listed) then
      plan.refused = {orphaned = orphans, listed = listed}
      if not p.dry_run then return cjson.encode(plan) end
    end
  end

  local host_writes, host_deletes = {}, {}
  local stored_hosts = redis.call('HGETALL', HOSTS)
  local stored = {}
  for i = 1, #stored_hosts, 2 do stored[stored_hosts[i]] = stored_hosts[i + 1] end
  for name, spec in pairs(p.hosts) do
    if stored[name] ~= spec then table.insert(host_writes, {name, spec}) end
  end
  for name, _ in pairs(stored) do
    if p.hosts[name] == nil then table.insert(host_deletes, name) end
  end

  -- HGETALL, not HEXISTS: a lookup steps Redis's incremental rehash of a large hash, which
  -- re-lays it out; an unchanged load must leave every key byte-identical.
  local stored_classes = {}
  local raw_classes = redis.call('HGETALL', CLASSES)
  for i = 1, #raw_classes, 2 do stored_classes[raw_classes[i]] = true end
  local class_writes = {}
  for id, spec in pairs(p.classes) do
    if stored_classes[id] == nil then table.insert(class_writes, {id, spec}) end
  end

  -- Names gone from `names` (an operator deleted a damaged key, as fleet's errors advise) are
  -- written back. Looked at one by one only when the hash holds fewer names than the manifest
  -- lists jobs, so an unchanged load of a healthy store still costs one HLEN here.
  local name_writes = {}
  if redis.call('HLEN', NAMES) < #p.jobs then
    for _, j in ipairs(p.jobs) do
      if redis.call('HGET', NAMES, j.name) ~= j.id then table.insert(name_writes, j) end
    end
  end

  local meta = redis.call('HMGET', META, 'digest', 'path', 'name')
  local meta_changed = meta[1] ~= p.manifest.digest or meta[2] ~= p.manifest.path or meta[3] ~= p.manifest.name

  local changed = #actions > 0 or #host_writes > 0 or #host_deletes > 0 or #class_writes > 0 or meta_changed
                  or #name_writes > 0
  plan.changed = changed
  if p.dry_run or not changed then
    return cjson.encode(plan)
  end

  -- Every other key phase 2 writes, checked before the first write: a wrong type found midway
  -- (Redis keeps a script's writes up to its error) would leave a half-applied manifest, and
  -- a foreign value at `heads` would hide every pending job from every claim.
  local checked = {}  -- a key many jobs share (heads, a class's pending zset) is looked at once
  local function foreign_once(key, want)
    if checked[key] then return nil end
    checked[key] = true
    return foreign(key, want)
  end
  local function edges_foreign(j)
    local dkey = p.deps_prefix .. j.id
    local bad = foreign_once(dkey, 'set')
    if bad then return bad end
    for _, old in ipairs(redis.call('SMEMBERS', dkey)) do
      bad = foreign_once(p.dependents_prefix .. old, 'set')
      if bad then return bad end
    end
    for _, parent in ipairs(j.parents) do
      bad = foreign_once(p.dependents_prefix .. parent, 'set') or foreign_once(p.job_prefix .. parent, 'hash')
      if bad then return bad end
    end
  end
  local bad = foreign_once(p.heads_key, 'zset') or foreign_once(p.state_prefix .. S.pending, 'zset')
              or foreign_once(p.state_prefix .. S.blocked, 'zset')
  for _, a in ipairs(actions) do
    if bad then break end
    local kind, j, c = a[1], a[2], a[3]
    if kind == 'orphan' then
      bad = c.indexed == '1' and foreign_once(p.pending_prefix .. c.class, 'zset')
    else
      bad = foreign_once(p.pending_prefix .. j.class, 'zset') or (c and c.class and foreign_once(p.pending_prefix .. c.class, 'zset'))
            or edges_foreign(j) or (kind == 'add' and #ARGV > 1 and foreign_once(p.rq_job_prefix .. j.id, 'hash'))
    end
  end
  if bad then return cjson.encode({error = bad}) end

  -- Phase 2: write -----------------------------------------------------------------
  local function index(id, class, rank, seq)
    pending_add(class, pending_score(rank, nil, seq), id)
    redis.call('HSET', p.job_prefix .. id, 'indexed', '1')
  end

  local function unindex(id, class)
    pending_remove(class, id)
    redis.call('HSET', p.job_prefix .. id, 'indexed', '0')
  end

  local function rename(id, old, new)
    if old ~= new then
      if old and redis.call('HGET', NAMES, old) == id then redis.call('HDEL', NAMES, old) end
    end
    redis.call('HSET', NAMES, new, id)
  end

  -- (Re)write a job's `after` edges; returns how many distinct parents have not finished and
  -- one parent that failed, was canceled or is blocked (nil if none). A parent listed twice is
  -- counted once (SADD returns 0 the second time): it finishes once, and release_children
  -- (deps.lua) takes one off `waits` per finish.
  local function set_edges(j)
    local dkey = p.deps_prefix .. j.id
    for _, old in ipairs(redis.call('SMEMBERS', dkey)) do redis.call('SREM', p.dependents_prefix .. old, j.id) end
    redis.call('DEL', dkey)
    local waits, stuck = 0, nil
    for _, parent in ipairs(j.parents) do
      if redis.call('SADD', dkey, parent) == 1 then
        redis.call('SADD', p.dependents_prefix .. parent, j.id)
        local ps = redis.call('HGET', p.job_prefix .. parent, 'state')
        if ps ~= S.finished then waits = waits + 1 end
        if ps == S.failed or ps == S.canceled or ps == S.blocked then stuck = parent end
      end
    end
    return waits, stuck
  end

  -- The pending index holds a job iff it is pending, in the manifest and waits on nothing.
  local function place(id, state, in_manifest, waits, old_class, indexed, class, rank, seq)
    if indexed == '1' then pending_remove(old_class, id) end
    if state == S.pending and in_manifest == '1' and waits == 0 then
      index(id, class, rank, seq)
      return true
    end
    redis.call('HSET', p.job_prefix .. id, 'indexed', '0')
    return false
  end

  local function update_spec(j, c, in_manifest)
    local key = p.job_prefix .. j.id
    redis.call('SET', p.spec_prefix .. j.id, j.spec)
    local waits = set_edges(j)
    redis.call('HSET', key, 'name', j.name, 'sched', j.sched, 'class', j.class,
               'priority', j.priority, 'rank', j.rank, 'max_attempts', j.max_attempts, 'waits', waits,
               'updated_at', p.now)
    rename(j.id, c.name, j.name)
    return place(j.id, c.state, in_manifest, waits, c.class, c.indexed, j.class, j.rank, c.seq)
  end

  local rq_template = {}
  for i = 2, #ARGV do table.insert(rq_template, ARGV[i]) end

  local wakeups = 0
  for _, a in ipairs(actions) do
    local kind, j, c = a[1], a[2], a[3]
    local key = p.job_prefix .. j.id
    if kind == 'add' then
      local seq = redis.call('INCR', SEQ)
      local waits, stuck = set_edges(j)
      local state = stuck and S.blocked or S.pending
      redis.call('SET', p.spec_prefix .. j.id, j.spec)
      move_state(j.id, nil, state, 'id', j.id, 'name', j.name, 'sched', j.sched, 'class', j.class,
                 'priority', j.priority, 'rank', j.rank, 'max_attempts', j.max_attempts, 'waits', waits, 'seq', seq,
                 'attempts', 0, 'in_manifest', '1', 'created_at', p.now, 'indexed', '0')
      if stuck then
        local parent = redis.call('HGET', p.job_prefix .. stuck, 'name') or stuck
        redis.call('HSET', key, 'reason', 'blocked: ' .. parent .. ' did not finish')
      end
      redis.call('ZADD', JOBS, seq, j.id)
      redis.call('ZADD', IDS, 0, j.id)
      redis.call('SADD', INM, j.id)
      rename(j.id, nil, j.name)
      if place(j.id, state, '1', waits, j.class, '0', j.class, j.rank, seq) then wakeups = wakeups + 1 end
      if #rq_template > 0 then
        local rq_key = p.rq_job_prefix .. j.id
        redis.call('HSET', rq_key, unpack(rq_template))
        redis.call('HSET', rq_key, 'description', j.name, 'created_at', p.now_iso, 'status', 'queued')
      end
    elseif kind == 'update' then
      if update_spec(j, c, '1') then wakeups = wakeups + 1 end
    elseif kind == 'revive' then
      redis.call('HSET', key, 'in_manifest', '1')
      redis.call('SADD', INM, j.id)
      redis.call('ZREM', ORPH, j.id)
      if update_spec(j, c, '1') then wakeups = wakeups + 1 end
    elseif kind == 'orphan' then
      redis.call('HSET', key, 'in_manifest', '0', 'updated_at', p.now)
      redis.call('SREM', INM, j.id)
      redis.call('ZADD', ORPH, p.now, j.id)
      if c.indexed == '1' then unindex(j.id, c.class) end
    end
  end

  for _, j in ipairs(name_writes) do redis.call('HSET', NAMES, j.name, j.id) end
  for _, hw in ipairs(host_writes) do redis.call('HSET', HOSTS, hw[1], hw[2]) end
  for _, name in ipairs(host_deletes) do redis.call('HDEL', HOSTS, name) end
  for _, cw in ipairs(class_writes) do redis.call('HSET', CLASSES, cw[1], cw[2]) end
  if meta_changed then
    redis.call('HSET', META, 'name', p.manifest.name, 'path', p.manifest.path, 'digest', p.manifest.digest,
               'applied_at', p.now)
  end
  if wakeups > 0 then
    redis.call('XADD', EVENTS, 'MAXLEN', '~', 1000, '*', 'kind', 'claimable', 'count', wakeups)
  end
  return cjson.encode(plan)
end

-- A 100,000-job payload leaves ~300 MB in Redis's Lua heap. Collected here, it costs the load
-- a fraction of a second; left to the incremental collector, which takes a step in every later
-- script call, it more than doubled every claim's time for a minute or more after the load
-- (bench/claim_cost.py).
local result = apply()
collectgarbage('collect')
return result
