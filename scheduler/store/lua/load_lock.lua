--[[ load_lock: the namespace's one manifest-load lock (scheduler/store/loading.py LoadLock).

KEYS  1 the lock (hash: owner, load, phase, chunks, next, expires, wakeups)
ARGV  1 mode   2 the caller's owner token   3 now (epoch seconds)   4 lease in seconds
      5 (stage only) how many chunks are staged
Modes and replies:
  acquire  take the lock: {"ok"}; held by a live owner: {"busy", expires}. An expired one
           still planning or staging is dropped (that load never began: the store is the
           old manifest) and taken: {"ok"}. An expired one past its commit point
           ('applying') is taken over to be finished first: {"resume", load, next, chunks}.
  resume   only the last case of acquire; else {"no"}.
  stage    the caller's chunks are staged: {"ok"}, or {"lost"} if it no longer owns the lock.
  renew    extend the caller's lease: {"ok"} or {"lost"}.
  release  drop the lock if the caller owns it: {"ok"} or {"lost"}.
The phase turns 'applying' in load_step.lua's first step, the load's commit point; while it
is, claim.lua hands out no job.
]]
local LOCK, mode, owner, now, lease = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local l = redis.call('HMGET', LOCK, 'owner', 'phase', 'expires', 'load', 'next', 'chunks')
local held, phase, expires = l[1], l[2], tonumber(l[3]) or 0

if mode == 'stage' or mode == 'release' or mode == 'renew' then
  if held ~= owner then return {'lost'} end
  if mode == 'release' then
    redis.call('DEL', LOCK)
  elseif mode == 'renew' then
    redis.call('HSET', LOCK, 'expires', tostring(now + lease))
  else
    redis.call('HSET', LOCK, 'phase', 'staged', 'chunks', ARGV[5], 'next', 0, 'expires', tostring(now + lease))
  end
  return {'ok'}
end

if held and expires > now then
  if mode == 'resume' then return {'no'} end
  return {'busy', tostring(expires)}
end
if held and phase == 'applying' then
  redis.call('HSET', LOCK, 'owner', owner, 'expires', tostring(now + lease))
  return {'resume', l[4], l[5], l[6]}
end
if mode == 'resume' then return {'no'} end
redis.call('DEL', LOCK)
redis.call('HSET', LOCK, 'owner', owner, 'load', owner, 'phase', 'planning', 'expires', tostring(now + lease))
return {'ok'}
