--[[ renew: extend a running job's lease, if this worker still holds it.

KEYS  1 running (zset)   2 the job's record (hash)
ARGV  1 job id   2 worker name   3 attempt number   4 new deadline (epoch seconds)
      5 the name of the running state
Returns "ok", "cancel" (an operator asked to stop it; lease still extended) or
        "lost" (the lease was reaped or the job belongs to another attempt now:
        the caller must stop the job at once, another worker may be running it).
]]
local f = redis.call('HMGET', KEYS[2], 'state', 'last_worker', 'lease_attempt', 'cancel_requested')
if f[1] ~= ARGV[5] or f[2] ~= ARGV[2] or f[3] ~= ARGV[3] or not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 'lost'
end
redis.call('ZADD', KEYS[1], 'XX', ARGV[4], ARGV[1])
if f[4] == '1' then return 'cancel' end
return 'ok'
