--[[ deps: helpers for dependencies (`after`, `after_any`, `after_failed`), included by finish.lua,
actions.lua and load_step.lua.

Included textually where a script says `-- #include deps`, after it has defined
`p` (its decoded JSON payload, with job_prefix, pending_prefix, heads_key, state_prefix,
deps_prefix, dependents_prefix and now) and `S` (the state names), and after pending.lua and states.lua (move_state).

An edge's kind is 'ok' (after), 'any' (after_any) or 'failed' (after_failed); the child's
record lists the kinds of its edges that are not 'ok' in `dep_kinds` ("<parent id>:any,...").
edge_met is scheduler.dependencies.edge_met: a parent that ends meets an edge (its child
waits on one parent less) or makes it unmeetable (the child and its descendants are
blocked); retrying or rerunning it unblocks those no other parent holds.
tests/test_dependencies.py drives each path.
]]
-- Puts a job in the pending index if it is pending, in the manifest, waits on no parent and
-- is not waiting out a retry delay (`retry_at`, finish.lua); true if it did.
local function index_if_ready(id)
  local f = redis.call('HMGET', p.job_prefix .. id, 'state', 'in_manifest', 'waits', 'indexed', 'class',
                       'rank', 'priority', 'seq', 'retry_at')
  if f[1] == S.pending and f[2] == '1' and tonumber(f[3]) == 0 and f[4] ~= '1'
     and not ((tonumber(f[9]) or 0) > tonumber(p.now)) then
    pending_add(f[5], pending_score(f[6], f[7], f[8]), id)
    redis.call('HSET', p.job_prefix .. id, 'indexed', '1')
    return true
  end
  return false
end

-- The kind of the edge from parent in a `dep_kinds` value ("<parent id>:any,..."): 'ok' when
-- it is not listed.
local function kind_in(kinds, parent)
  if not kinds or kinds == '' then return 'ok' end
  return string.match(',' .. kinds .. ',', ',' .. parent .. ':(%a+),') or 'ok'
end

-- The kind of child's edge from parent: 'ok', 'any' or 'failed'.
local function edge_kind(child, parent)
  return kind_in(redis.call('HGET', p.job_prefix .. child, 'dep_kinds'), parent)
end

-- Whether an edge of `kind` is met by a parent in state `ps`: true, false (it never can be,
-- as things stand) or nil (not yet). scheduler.dependencies.edge_met.
local function edge_met(kind, ps)
  if ps == S.finished then return kind ~= 'failed' end
  if ps == S.failed then return kind ~= 'ok' end
  if ps == S.canceled then return kind == 'any' end
  if ps == S.blocked then return false end
  return nil
end

local EDGE_WORDS = {ok = 'did not finish', any = 'will never end', failed = 'did not fail'}

-- Moves every pending or held descendant of root (through every edge kind: a blocked job never
-- ends) to blocked, each with the root's name and why its child's edge cannot be met; `first`
-- are the children of root whose edges it can no longer meet.
local function block_from(root, first)
  local name = redis.call('HGET', p.job_prefix .. root, 'name') or root
  local queue, seen = {}, {[root] = true}
  for _, child in ipairs(first) do
    table.insert(queue, {child, EDGE_WORDS[edge_kind(child, root)]})
  end
  while #queue > 0 do
    local child, why = queue[1][1], queue[1][2]
    table.remove(queue, 1)
    if not seen[child] then
      seen[child] = true
      local f = redis.call('HMGET', p.job_prefix .. child, 'state', 'indexed', 'class')
      if f[1] == S.pending or f[1] == S.held then
        if f[2] == '1' then
          pending_remove(f[3], child)
          redis.call('HSET', p.job_prefix .. child, 'indexed', '0')
        end
        move_state(child, f[1], S.blocked, 'reason', 'blocked: ' .. name .. ' ' .. why)
        for _, grandchild in ipairs(redis.call('SMEMBERS', p.dependents_prefix .. child)) do
          table.insert(queue, {grandchild, why})
        end
      end
    end
  end
end

-- Parent just reached `state` (finished, failed for good or canceled): each child whose edge
-- that meets waits on one parent less (and is indexed when it waits on none); the others can
-- never be met and are blocked with their descendants. Returns how many children were indexed.
local function settle_children(parent, state)
  local released, unmet = 0, {}
  for _, child in ipairs(redis.call('SMEMBERS', p.dependents_prefix .. parent)) do
    if edge_met(edge_kind(child, parent), state) then
      local left = redis.call('HINCRBY', p.job_prefix .. child, 'waits', -1)
      if left < 0 then redis.call('HSET', p.job_prefix .. child, 'waits', 0) end
      if index_if_ready(child) then released = released + 1 end
    else
      unmet[#unmet + 1] = child
    end
  end
  if #unmet > 0 then block_from(parent, unmet) end
  return released
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
          if edge_met(edge_kind(child, parent), ps) == false then held = true end
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
