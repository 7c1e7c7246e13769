--[[ types: the check a script makes of every key before its first write.

Included textually where a script says `-- #include types`. Redis keeps a script's writes
up to the command that fails, so a key holding a value fleet did not write (another type:
WRONGTYPE) met midway would leave the change half-made; a script looks at each key it will
write first and refuses, naming the key, with nothing written. The 'fleet: ' prefix tells
the Python side (scheduler/store/claims.py) that the refusal names a damaged key.
]]
-- nil if `key` is absent or holds a `want`; else the refusal, naming the key.
local function foreign(key, want)
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and t ~= want then
    return 'fleet: key ' .. key .. ' holds a ' .. t .. ', not fleet\'s ' .. want
  end
  return nil
end
