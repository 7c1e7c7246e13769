--[[ deps: helpers for `after` dependencies, included by finish.lua and actions.lua.

Included textually where a script says `-- #include deps`, after it has defined
`p` (its decoded JSON payload, with job_prefix, pending_prefix, heads_key, state_prefix,
deps_prefix, dependents_prefix and now) and `S` (the state names), and after pending.lua and states.lua (move_state).

A finished parent releases its children; a parent that failed for good or was
canceled blocks every pending or held descendant; retrying it unblocks those no
other parent holds. tests/test_dependencies.py drives each path.
]]
local function index_if_ready(id)
  local f = redis.call('HMGET', p.job_prefix .. id, 'state', 'in_manifest', 'waits', 'indexed', 'class',
                       'rank', 'priority', 'seq')
  if f[1] == S.pending and f[2] == '1' and tonumber(f[3]) == 0 and f[4] ~= '1' then
    pending_add(f[5], pending_score(f[6], f[7], f[8]), id)
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
            pending_remove(f[3], child)
            redis.call('HSET', p.job_prefix .. child, 'indexed', '0')
          end
          move_state(child, f[1], S.blocked, 'reason', 'blocked: ' .. name .. ' did not finish')
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
          move_state(child, S.blocked, S.pending, 'reason', '')
          index_if_ready(child)
          table.insert(queue, child)
        end
      end
    end
  end
end
