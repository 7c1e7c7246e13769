--[[ load_read: a load plan's reads, a batch at a time (scheduler/store/load_plan.py).

Read-only. A load reads what it compares and checks in batches of about a thousand jobs or
keys per call, a few milliseconds each, instead of one script over the whole manifest (which
held Redis for seconds) or one pipelined command per key (which cost the client ~0.1 ms
each in redis-py).

KEYS  1 jobs (zset): any key of the namespace's slot, so Redis Cluster routes the call
ARGV  1 mode: "jobs" | "types"
      2 JSON: jobs: {job_prefix, deps_prefix, rq_job_prefix, ids[]}; types: {keys[]}
Returns JSON: jobs: one object per id, in order: {t = the job key's type, f = [sched, state,
        class, priority, seq, in_manifest, name, indexed, rank] (when t is hash; null for a
        missing field), d = the type of its deps set, m = the deps set's members (when d is
        set), r = the type of its rq job hash}; types: the type of each key, in order.
]]
local p = cjson.decode(ARGV[2])
local out = {}
if ARGV[1] == 'types' then
  for i, key in ipairs(p.keys) do out[i] = redis.call('TYPE', key)['ok'] end
  return cjson.encode(out)
end
for i, id in ipairs(p.ids) do
  local key = p.job_prefix .. id
  local row = {t = redis.call('TYPE', key)['ok']}
  if row.t == 'hash' then
    local f = redis.call('HMGET', key, 'sched', 'state', 'class', 'priority', 'seq', 'in_manifest', 'name',
                         'indexed', 'rank')
    for k = 1, 9 do f[k] = f[k] or cjson.null end
    row.f = f
  end
  local dkey = p.deps_prefix .. id
  row.d = redis.call('TYPE', dkey)['ok']
  if row.d == 'set' then row.m = redis.call('SMEMBERS', dkey) end
  row.r = redis.call('TYPE', p.rq_job_prefix .. id)['ok']
  out[i] = row
end
return cjson.encode(out)
