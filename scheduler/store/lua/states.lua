--[[ states: the one way a script moves a job from one state to another.

Included textually where a script says `-- #include states`, after it has defined `p`
(its decoded JSON payload, with job_prefix, state_prefix and now). A job's state lives
twice: in its hash ('state', 'state_at') and in one per-state index zset
(state_prefix .. state, scored by when it got there) that `fleet status` counts and
`fleet jobs --state` pages through. Moving both here keeps them from drifting apart.
tests/test_states.py checks every move any script makes against scheduler/states.py's
TRANSITIONS.
]]
-- Move job `id` from state `from` (nil: a new job, in no index yet) to `to`; any further
-- field/value pairs are written in the same HSET.
local function move_state(id, from, to, ...)
  if from then redis.call('ZREM', p.state_prefix .. from, id) end
  redis.call('ZADD', p.state_prefix .. to, p.now, id)
  redis.call('HSET', p.job_prefix .. id, 'state', to, 'state_at', p.now, 'updated_at', p.now, ...)
end
