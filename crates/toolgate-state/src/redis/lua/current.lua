-- The value a counter is checked against now (`CounterStore::current`).
--
-- KEYS[1]  the counter without its window, as for reserve.lua
-- ARGV[1]  "" to read the server's clock, or the time in ms (tests only)
-- ARGV[2]  length ms; ARGV[3] "1" if sliding

local value = estimate(KEYS[1], tonumber(ARGV[2]), ARGV[3] == '1', now_ms(ARGV[1]))
return value
