--[[ actions: an operator's action on jobs: cancel, retry, rerun, hold, release.

KEYS  1 events (stream); declared so the script routes to the namespace's slot, whose
        prefixes in ARGV build every other key
ARGV  1 JSON {action, ids[], now, reset, all_or_nothing, the key prefixes (scheduler/keys.py
        script_prefixes), states{...} (scheduler/states.py script_names),
        transitions{from: [to, ...]} (scheduler/states.py TRANSITIONS)}
Returns JSON [{job_id, ok, from, to, message}] in the order of ids, or an error reply
        starting 'fleet: ' naming a key that holds a value fleet did not write (types.lua),
        with nothing written.

Invariants:
  * All or nothing: every job is judged before the first write. A damaged key refuses the
    whole action; with all_or_nothing (the CLI's), so does one job the action does not
    apply to: every job then comes back not ok, the refused ones saying why.
  * Only transitions listed in scheduler.states.TRANSITIONS happen; anything else is
    reported back unchanged, so the Lua can never invent a state change.
  * A running job is not changed here: cancel sets cancel_requested and the worker
    holding the lease stops the process group and records the attempt canceled.
  * rerun takes a finished, failed or canceled job back to pending as its next attempt:
    its earlier attempts' records are left as they are (so are their output dirs).
  * The pending index holds a job iff it is pending, in the manifest and not waiting.
  * rq agrees: a job canceled here is in rq's canceled registry with status canceled (the
    worker files a running one there when its attempt ends canceled); a retry takes it out.
]]

-- One function, so that everything it decoded is garbage once it returns (see the end).
local function apply_action()
  local p = cjson.decode(ARGV[1])
  ARGV[1] = ''  -- the payload text too: ARGV stays referenced until the next script call
  local S = p.states

  -- #include pending
  -- #include states
  -- #include deps
  -- #include types

  local function allowed(from, to)
    for _, s in ipairs(p.transitions[from] or {}) do if s == to then return true end end
    return false
  end

  local TARGET = {cancel = S.canceled, retry = S.pending, rerun = S.pending, hold = S.held, release = S.pending}
  local SOURCES = {retry = {[S.failed] = true, [S.canceled] = true}, release = {[S.held] = true},
                   rerun = {[S.finished] = true, [S.failed] = true, [S.canceled] = true}}
  local SOURCE_WORDS = {retry = 'failed or canceled', release = 'held', rerun = 'finished, failed or canceled'}

  -- The keys a change of job `id` writes, as {key, type}: checked before anything is written.
  local function writes(id, f, to)
    local out = {{p.job_prefix .. id, 'hash'}, {p.state_prefix .. f[1], 'zset'}, {p.state_prefix .. to, 'zset'},
                 {p.heads_key, 'zset'}, {p.dependents_prefix .. id, 'set'}, {KEYS[1], 'stream'}}
    if f[2] then table.insert(out, {p.pending_prefix .. f[2], 'zset'}) end
    table.insert(out, {p.retry_wait_key, 'zset'})
    if to == S.canceled or f[1] == S.canceled then
      table.insert(out, {p.rq_canceled_key, 'zset'})
      table.insert(out, {p.rq_job_prefix .. id, 'hash'})
    end
    return out
  end

  -- rq's view of a cancel (rq info, rq-dashboard): its canceled registry and the job's status,
  -- where rq has a record of the job; a retry takes it out again.
  local function mirror_in_rq(id, to)
    local rq_key = p.rq_job_prefix .. id
    if to == S.canceled then
      redis.call('ZADD', p.rq_canceled_key, p.now, id)
      if redis.call('EXISTS', rq_key) == 1 then redis.call('HSET', rq_key, 'status', 'canceled') end
    elseif redis.call('ZREM', p.rq_canceled_key, id) == 1 and redis.call('EXISTS', rq_key) == 1 then
      redis.call('HSET', rq_key, 'status', 'queued')
    end
  end

  -- Phase 1: judge every job; write nothing.
  local out, plan, refused = {}, {}, false
  for _, id in ipairs(p.ids) do
    local key = p.job_prefix .. id
    local bad = foreign(key, 'hash')
    if bad then return redis.error_reply(bad) end
    local f = redis.call('HMGET', key, 'state', 'class', 'indexed')
    local from, to = f[1], TARGET[p.action]
    local r = {job_id = id, from = from, to = to, ok = false}
    if not from then
      r.message = 'no such job'
    elseif p.action == 'cancel' and from == S.running then
      r.ok, r.to, r.message = true, from, 'cancel requested; its worker stops the process group'
    elseif SOURCES[p.action] and not SOURCES[p.action][from] then
      r.message = p.action .. ' applies to ' .. SOURCE_WORDS[p.action] .. ' jobs, not ' .. from ..
                  (from == S.running and ' (it runs now: `fleet cancel` it first, or wait for it to end)' or '')
    elseif not allowed(from, to) then
      r.message = 'cannot ' .. p.action .. ' a ' .. from .. ' job'
    else
      for _, w in ipairs(writes(id, f, to)) do
        bad = foreign(w[1], w[2])
        if bad then return redis.error_reply(bad) end
      end
      r.ok = true
    end
    refused = refused or not r.ok
    table.insert(out, r)
    table.insert(plan, f)
  end
  if refused and p.all_or_nothing then
    for _, r in ipairs(out) do
      if r.ok then
        r.ok, r.to, r.message = false, r.from, 'not changed: the action was refused for another job it names'
      end
    end
    return cjson.encode(out)
  end

  -- Phase 2: write.
  for i, r in ipairs(out) do
    local id, f, key = r.job_id, plan[i], p.job_prefix .. r.job_id
    if r.ok and r.from == S.running then
      redis.call('HSET', key, 'cancel_requested', '1', 'updated_at', p.now)
    elseif r.ok then
      local from, to = r.from, r.to
      if f[3] == '1' then
        pending_remove(f[2], id)
        redis.call('HSET', key, 'indexed', '0')
      end
      move_state(id, from, to, 'cancel_requested', '0')
      -- An operator's action ends a retry delay: a release means now, and a held or canceled
      -- job leaves the wait with it.
      if redis.call('HDEL', key, 'retry_at') == 1 then redis.call('ZREM', p.retry_wait_key, id) end
      -- A rerun starts a fresh run of attempts: the count of failures starts again too.
      if (p.action == 'retry' and p.reset) or p.action == 'rerun' then redis.call('HSET', key, 'failures', 0) end
      local released = to == S.canceled and settle_children(id, S.canceled) > 0  -- after_any children
      if to == S.canceled or from == S.canceled then mirror_in_rq(id, to) end
      if p.action == 'retry' or p.action == 'rerun' then unblock_descendants(id) end
      if index_if_ready(id) or released then
        redis.call('XADD', KEYS[1], 'MAXLEN', '~', 1000, '*', 'kind', 'claimable', 'count', 1)
      end
    end
  end
  return cjson.encode(out)
end

-- A bulk action (`fleet hold` naming 20,000 jobs) left ~12 MB of decoded ids and
-- replies in Redis's Lua heap, reclaimed a step per later script call: every claim pays
-- for that while it lasts (apply_manifest.lua says how much). The full collection adds
-- ~13 us to an action on one job (27 -> 40 us in Redis); actions are an operator's, and rare.
local result = apply_action()
collectgarbage('collect')
return result
