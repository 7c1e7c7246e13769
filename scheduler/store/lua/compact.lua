--[[ compact: once an attempt has ended, keep its streams at the bytes they hold.

Redis 7.0 allocates each new stream node's listpack at stream-node-max-bytes (4 KB), and
even laid out at its exact size a stream of a few entries costs ~0.8 KB of structure for
~0.1 KB of lines: most of a finished job's memory (bench/memory.py). So:

- the attempt's log and metrics streams, which nothing appends to any more, are frozen
  when they hold at most ARGV[1] entries (where the structure is most of their bytes, and
  the rewrite takes well under a millisecond; a capped 10,000-line log took 44 ms):
  their entries go, in order, onto the end of a string (one "<entry id>\t<line>\n" per
  entry; a line never holds a newline, worker/output_stream.py splits on them) that takes
  the stream's expiry, and the stream is deleted. A line that still comes late (a catch-up
  after an outage) starts a new stream, which readers put after the text, and the next
  compaction appends it too. scheduler/store/streams.py reads both forms.
- a longer one, and rq's result stream (which rq reads as a stream), is rewritten with DUMP
  and RESTORE at its exact size, keeping its entries, ids and expiry.

Atomic per key: nothing can be appended between the read and the rewrite.

KEYS  log stream, log text, metrics stream, metrics text, rq's result stream (an absent
      stream is skipped; one whose text key holds anything but a string is rewritten)
ARGV  the most entries a stream may hold to be frozen
Returns how many streams were frozen or rewritten.
]]
local done = 0
local freeze_max = tonumber(ARGV[1]) or 0

local function rewrite(stream)
  local blob = redis.call('DUMP', stream)
  local ttl = redis.call('PTTL', stream)
  redis.call('RESTORE', stream, ttl > 0 and ttl or 0, blob, 'REPLACE')
  done = done + 1
end

local function freeze(stream, text)
  if redis.call('TYPE', stream)['ok'] ~= 'stream' then return end
  local held = redis.call('TYPE', text)['ok']
  if (held ~= 'none' and held ~= 'string') or redis.call('XLEN', stream) > freeze_max then
    return rewrite(stream)
  end
  local ttl = redis.call('PTTL', stream)
  local parts = {}
  for i, entry in ipairs(redis.call('XRANGE', stream, '-', '+')) do
    local fields, line = entry[2], ''
    for k = 1, #fields, 2 do
      if fields[k] == 'line' then line = fields[k + 1] end
    end
    parts[i] = entry[1] .. '\t' .. line .. '\n'
  end
  if #parts > 0 then
    redis.call('APPEND', text, table.concat(parts))
    if ttl > 0 then redis.call('PEXPIRE', text, ttl) end
  end
  redis.call('DEL', stream)
  done = done + 1
end

freeze(KEYS[1], KEYS[2])
freeze(KEYS[3], KEYS[4])
if redis.call('TYPE', KEYS[5])['ok'] == 'stream' then rewrite(KEYS[5]) end
return done
