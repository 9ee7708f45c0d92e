-- Gives back what a reservation added (`CounterStore::rollback`), to exactly the windows it
-- was added to: never to a newer window, never below zero, and a window already forgotten
-- (expired) stays forgotten: nothing is created.
--
-- KEYS[i]  counter i without its window, as for reserve.lua
-- ARGV[1]  "" to read the server's clock, or the time in ms (tests only)
-- then three per counter: length ms, window start ms, amount (millionths)

if redis.replicate_commands then
  redis.replicate_commands()
end

local now = now_ms(ARGV[1])
for i = 1, #KEYS do
  local at = 1 + (i - 1) * 3
  local len = tonumber(ARGV[at + 1])
  local start = ARGV[at + 2]
  local amount = ARGV[at + 3]
  -- `windows::is_expired`: with the server's clock the key's TTL has removed it already.
  if tonumber(start) + 2 * len > now then
    local key = KEYS[i] .. ':' .. start
    local value = redis.call('GET', key)
    if value then
      if value:find('^%d+$') == nil or cmp(value, amount) <= 0 then
        redis.call('DEL', key)
      else
        redis.call('DECRBY', key, amount)
      end
    end
  end
end
return 1
