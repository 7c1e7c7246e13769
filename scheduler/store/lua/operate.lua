--[[ operate: an operator's action on jobs: cancel, retry, hold, release.

KEYS  1 events (stream); declared so the script routes to the namespace's slot, whose
        prefixes in ARGV build every other key
ARGV  1 JSON {action, ids[], now, reset, job_prefix, pending_prefix, state_prefix, deps_prefix, dependents_prefix,
        states{...}, transitions{from: [to, ...]}}   -- transitions: scheduler.states.TRANSITIONS
Returns JSON [{job_id, ok, from, to, message}] in the order of ids.

Invariants:
  * Only transitions listed in scheduler.states.TRANSITIONS happen; anything else is
    reported back unchanged, so the Lua can never invent a state change.
  * A running job is not changed here: cancel sets cancel_requested and the worker
    holding the lease stops the process group and records the attempt canceled.
  * The pending index holds a job iff it is pending, in the manifest and not waiting.
]]

local p = cjson.decode(ARGV[1])
local S = p.states

-- Dependencies (the same three helpers live in finish.lua and operate.lua; tests/test_dependencies.py
-- drives each path). A finished parent releases its children; a parent that failed for good or was
-- canceled blocks every pending or held descendant; retrying it unblocks those no other parent holds.
local function index_if_ready(id)
  local f = redis.call('HMGET', p.job_prefix .. id, 'state', 'in_manifest', 'waits', 'indexed', 'class',
                       'priority', 'seq')
  if f[1] == S.pending and f[2] == '1' and tonumber(f[3]) == 0 and f[4] ~= '1' then
    redis.call('ZADD', p.pending_prefix .. f[5], (1000 - tonumber(f[6])) * 1e10 + tonumber(f[7]), id)
    redis.call('HSET', p.job_prefix .. id, 'indexed', '1')
    return true
  end
  return false
end

local function release_children(parent)
  local released = 0
  for _, child in ipairs(redis.call('SMEMBERS', p.dependents_prefix .. parent)) do
    local left = redis.call('HINCRBY', p.job_prefix .. child, 'waits', -1)
    if left < 0 then redis.call('HSET', p.job_prefix .. child, 'waits', 0) end
    if index_if_ready(child) then released = released + 1 end
  end
  return released
end

local function move_state(id, from, to, reason)
  redis.call('ZREM', p.state_prefix .. from, id)
  redis.call('ZADD', p.state_prefix .. to, p.now, id)
  redis.call('HSET', p.job_prefix .. id, 'state', to, 'state_at', p.now, 'updated_at', p.now, 'reason', reason)
end

local function block_descendants(root)
  local name = redis.call('HGET', p.job_prefix .. root, 'name') or root
  local queue, seen = {root}, {[root] = true}
  while #queue > 0 do
    local id = table.remove(queue, 1)
    for _, child in ipairs(redis.call('SMEMBERS', p.dependents_prefix .. id)) do
      if not seen[child] then
        seen[child] = true
        local f = redis.call('HMGET', p.job_prefix .. child, 'state', 'indexed', 'class')
        if f[1] == S.pending or f[1] == S.held then
          if f[2] == '1' then
            redis.call('ZREM', p.pending_prefix .. f[3], child)
            redis.call('HSET', p.job_prefix .. child, 'indexed', '0')
          end
          move_state(child, f[1], S.blocked, 'blocked: ' .. name .. ' did not finish')
          table.insert(queue, child)
        end
      end
    end
  end
end

local function unblock_descendants(root)
  local queue = {root}
  while #queue > 0 do
    local id = table.remove(queue, 1)
    for _, child in ipairs(redis.call('SMEMBERS', p.dependents_prefix .. id)) do
      if redis.call('HGET', p.job_prefix .. child, 'state') == S.blocked then
        local held = false
        for _, parent in ipairs(redis.call('SMEMBERS', p.deps_prefix .. child)) do
          local ps = redis.call('HGET', p.job_prefix .. parent, 'state')
          if ps == S.failed or ps == S.canceled or ps == S.blocked then held = true end
        end
        if not held then
          move_state(child, S.blocked, S.pending, '')
          index_if_ready(child)
          table.insert(queue, child)
        end
      end
    end
  end
end

local function allowed(from, to)
  for _, s in ipairs(p.transitions[from] or {}) do if s == to then return true end end
  return false
end

local TARGET = {cancel = S.canceled, retry = S.pending, hold = S.held, release = S.pending}
local SOURCES = {retry = {[S.failed] = true, [S.canceled] = true}, release = {[S.held] = true}}

local out = {}
for _, id in ipairs(p.ids) do
  local key = p.job_prefix .. id
  local f = redis.call('HMGET', key, 'state', 'class', 'priority', 'seq', 'indexed', 'in_manifest', 'waits')
  local from, to = f[1], TARGET[p.action]
  local r = {job_id = id, from = from, to = to, ok = false}
  if not from then
    r.message = 'no such job'
  elseif p.action == 'cancel' and from == S.running then
    redis.call('HSET', key, 'cancel_requested', '1', 'updated_at', p.now)
    r.ok, r.to, r.message = true, from, 'cancel requested; its worker stops the process group'
  elseif SOURCES[p.action] and not SOURCES[p.action][from] then
    r.message = p.action .. ' applies to ' .. (p.action == 'retry' and 'failed or canceled' or 'held') ..
                ' jobs, not ' .. from
  elseif not allowed(from, to) then
    r.message = 'cannot ' .. p.action .. ' a ' .. from .. ' job'
  else
    if f[5] == '1' then
      redis.call('ZREM', p.pending_prefix .. f[2], id)
      redis.call('HSET', key, 'indexed', '0')
    end
    redis.call('ZREM', p.state_prefix .. from, id)
    redis.call('ZADD', p.state_prefix .. to, p.now, id)
    redis.call('HSET', key, 'state', to, 'state_at', p.now, 'updated_at', p.now, 'cancel_requested', '0')
    if p.action == 'retry' and p.reset then redis.call('HSET', key, 'failures', 0) end
    if to == S.canceled then block_descendants(id) end
    if p.action == 'retry' then unblock_descendants(id) end
    if to == S.pending and f[6] == '1' and (tonumber(f[7]) or 0) == 0 then
      redis.call('ZADD', p.pending_prefix .. f[2], (1000 - tonumber(f[3])) * 1e10 + tonumber(f[4]), id)
      redis.call('HSET', key, 'indexed', '1')
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', 1000, '*', 'kind', 'claimable', 'count', 1)
    end
    r.ok = true
  end
  table.insert(out, r)
end
return cjson.encode(out)
