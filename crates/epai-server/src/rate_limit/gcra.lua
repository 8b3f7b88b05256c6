-- GCRA for one subject, atomically. The stored value is the subject's theoretical arrival time
-- (TAT) in milliseconds since the Unix epoch; the key expires when the budget has fully refilled,
-- since a missing key and a full budget are the same state.
--
-- KEYS[1]  the subject's key
-- ARGV[1]  now, in milliseconds since the Unix epoch (the caller's clock, not Redis TIME, so
--          tests can move it)
-- ARGV[2]  emission interval in milliseconds: 60000 / quota, possibly fractional
-- ARGV[3]  burst: the per-minute quota
--
-- Returns {allowed (0/1), remaining, reset after (ms), retry after (ms, -1 when allowed)}.

local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tolerance = interval * (burst - 1)

local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then
  tat = now
end

local allowed_from = tat - tolerance
if now < allowed_from then
  return {0, 0, math.ceil(tat - now), math.ceil(allowed_from - now)}
end

local new_tat = tat + interval
local backlog = new_tat - now
redis.call('SET', KEYS[1], string.format('%.17g', new_tat), 'PX', math.ceil(backlog))
-- The epsilon absorbs floating-point error in fractional intervals.
local remaining = math.floor(burst - backlog / interval + 1e-6)
return {1, remaining, math.ceil(backlog), -1}
