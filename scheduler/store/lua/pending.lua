--[[ pending: the only code that changes the pending index, included by every script that does.

Included textually where a script says `-- #include pending`, after it has defined
`p` (its payload, with pending_prefix and heads_key).

The pending index is one zset per constraint class (pending_prefix .. class), scored
rank + load order (rank: scheduler/queue_order.py, stored with the job at load:
priority, then the widest GPU need), plus `heads`: class -> the score of that class's
best job. A claim reads `heads` once instead of every class's zset, so its
cost does not grow with the number of classes a worker may run.
Invariant: heads holds a class iff its zset is non-empty, at the score of its head.
]]
-- A record stored before jobs had a rank is ranked as queue_rank(priority, 0, 0) until the
-- next load stores its rank (tests/test_queue_order.py holds the two to the same value).
local function pending_score(rank, priority, seq)
  local r = tonumber(rank) or (1000 - tonumber(priority)) * 3.4e12 + 16 * 2e11 + 999 * 2e8
  return r + tonumber(seq)
end

local function pending_add(class, score, id)
  redis.call('ZADD', p.pending_prefix .. class, score, id)
  redis.call('ZADD', p.heads_key, 'LT', score, class)
end

-- After a class's head left its zset: heads gets the new head's score, or loses the class.
local function heads_follow(class, key)
  local next_head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if next_head[1] then
    redis.call('ZADD', p.heads_key, next_head[2], class)
  else
    redis.call('ZREM', p.heads_key, class)
  end
end

local function pending_remove(class, id)
  local key = p.pending_prefix .. class
  local head = redis.call('ZRANGE', key, 0, 0)[1]
  if redis.call('ZREM', key, id) == 1 and head == id then heads_follow(class, key) end
end

-- Take a class's best job (a claim): one ZPOPMIN where a read and a remove took three calls.
local function pending_pop(class)
  local key = p.pending_prefix .. class
  local head = redis.call('ZPOPMIN', key)[1]
  if head then heads_follow(class, key) end
  return head
end
