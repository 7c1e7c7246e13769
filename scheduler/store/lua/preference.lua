--[[ preference: offer this idle worker's placement ranks, and ask which classes a better-placed
idle worker could take (worker/preference.py: the deferral), in a cost that does not grow with
the number of workers or of stale records.

KEYS  1 idle (zset: worker name -> when it last said idle)
ARGV  1 this worker's name   2 now (epoch seconds)   3 fresh_s: an idle entry older than this
      is not idle   4 forget_s: a board entry whose worker has not said idle for this long (or
      never) is removed   5 the prefer key prefix   6 "1" to (re)write this worker's ranks
      7 the boards' TTL in seconds, then per class: class id, this worker's rank
Returns how many other workers are idle now, then the class ids (of those given) that a
better-placed one of them could take.

A board (prefer:<class>) holds, per worker that offered, its rank; a higher rank is better
placed. Only entries ranked strictly above this worker's are looked at, at most SCAN of them,
and those whose workers are gone are removed on the way, so stale entries cost once.
]]
local SCAN = 16
local idle, me, now = KEYS[1], ARGV[1], tonumber(ARGV[2])
local fresh_since, forget_before = now - tonumber(ARGV[3]), now - tonumber(ARGV[4])
local prefix, write, ttl = ARGV[5], ARGV[6] == '1', tonumber(ARGV[7])

redis.call('ZREMRANGEBYSCORE', idle, '-inf', '(' .. forget_before)  -- workers killed while idle
local better = {}
for i = 8, #ARGV, 2 do
  local class, rank = ARGV[i], ARGV[i + 1]
  local board = prefix .. class
  if write then
    redis.call('ZADD', board, rank, me)
    redis.call('EXPIRE', board, ttl)
  end
  local above = redis.call('ZRANGEBYSCORE', board, '(' .. rank, '+inf', 'LIMIT', 0, SCAN)
  for _, other in ipairs(above) do
    if other ~= me then
      local said = tonumber(redis.call('ZSCORE', idle, other))
      if said and said >= fresh_since then
        table.insert(better, class)
        break
      elseif not said or said < forget_before then
        redis.call('ZREM', board, other)
      end
    end
  end
end
local others = redis.call('ZCOUNT', idle, fresh_since, '+inf')
local mine = tonumber(redis.call('ZSCORE', idle, me))
if mine and mine >= fresh_since then others = others - 1 end
table.insert(better, 1, others)
return better
