--[[ compact: re-lay out streams whose writing is done, so they keep only the bytes they hold.

Redis 7.0 allocates each new stream node's listpack at stream-node-max-bytes (4 KB), so
an attempt's log, metrics or rq result stream of a few entries took ~4.7 KB, most of a
finished job's memory (bench/memory.py). DUMP and RESTORE write the same entries, ids and
expiry back at their exact size (~0.7 KB for a few lines). Atomic per key: nothing can be
appended between the two.

KEYS  the streams to compact (an absent key is skipped)
ARGV  none
Returns how many keys were rewritten.
]]
local done = 0
for _, key in ipairs(KEYS) do
  if redis.call('TYPE', key)['ok'] == 'stream' then
    local blob = redis.call('DUMP', key)
    local ttl = redis.call('PTTL', key)
    redis.call('RESTORE', key, ttl > 0 and ttl or 0, blob, 'REPLACE')
    done = done + 1
  end
end
return done
