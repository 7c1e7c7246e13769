--[[ archive: record that an ended attempt's output dir moved to the archive (or undo that record).

KEYS  1 the job's attempts (list of JSON records)
ARGV  1 "mark" | "unmark"   2 attempt number   3 the output dir the caller saw
      4 the archive path   5 now (epoch seconds)
Returns "ok", or why nothing was written: "gone" (no such attempt), "running"
(not ended), "moved" (its output dir is not the one the caller saw), "other"
(already archived elsewhere). Marking is done before the directory moves, so a
prune that dies in between leaves a record the next prune completes; "unmark"
takes the record back when the move itself failed.
]]
local idx = tonumber(ARGV[2]) - 1
local raw = redis.call('LINDEX', KEYS[1], idx)
if not raw then return 'gone' end
local rec = cjson.decode(raw)
if rec.ended_at == nil then return 'running' end
if rec.output_dir ~= ARGV[3] then return 'moved' end
if ARGV[1] == 'mark' then
  if rec.archived_to ~= nil and rec.archived_to ~= ARGV[4] then return 'other' end
  rec.archived_to = ARGV[4]
  rec.archived_at = tonumber(ARGV[5])
else
  if rec.archived_to ~= ARGV[4] then return 'other' end
  rec.archived_to = nil
  rec.archived_at = nil
end
redis.call('LSET', KEYS[1], idx, cjson.encode(rec))
return 'ok'
