-- Reserves every counter of one call, or none (`CounterStore::reserve`).
--
-- KEYS[i]  counter i without its window: "{tag}:<key>:<length ms>"; the script appends
--          ":<window start ms>". Every key of a call shares the {tag}, so one slot.
-- ARGV[1]  "" to read the server's clock, or the time in ms (tests only)
-- then five per counter: length ms, "1" if sliding, max ("-1" if negative), amount, and
--          the sum of the amounts of earlier counters of this call on the same counter
--          (all in millionths).
--
-- Returns {1, now} when reserved (the caller derives each window start from now exactly as
-- the script did), or {0, index (0-based), current} for the first counter that does not fit
-- (`reservation::check`), having written nothing.

if redis.replicate_commands then
  -- Redis < 7 needs this before a write that follows TIME; later versions always do it.
  redis.replicate_commands()
end

local now = now_ms(ARGV[1])
local starts = {}
for i = 1, #KEYS do
  local at = 1 + (i - 1) * 5
  local len = tonumber(ARGV[at + 1])
  local sliding = ARGV[at + 2] == '1'
  local max = ARGV[at + 3]
  local amount = ARGV[at + 4]
  local earlier = ARGV[at + 5]
  local value, start = estimate(KEYS[i], len, sliding, now)
  local seen = saturate(add(value, earlier))
  if max:byte(1) == 45 or cmp(add(seen, amount), max) > 0 then
    return {0, i - 1, seen}
  end
  starts[i] = start
end

for i = 1, #KEYS do
  local len = tonumber(ARGV[1 + (i - 1) * 5 + 1])
  local key = KEYS[i] .. ':' .. digits(starts[i])
  redis.call('INCRBY', key, ARGV[1 + (i - 1) * 5 + 4])
  -- Kept while it is the current or the previous window (`windows::expires_at`), in either
  -- mode: fixed and sliding windows of one length share their counts.
  redis.call('PEXPIRE', key, digits(starts[i] + 2 * len - now))
end
return {1, digits(now)}
