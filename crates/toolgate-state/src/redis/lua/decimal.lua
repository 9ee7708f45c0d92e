-- Shared by every toolgate script (prepended to each): the clock, and exact arithmetic on
-- counts.
--
-- Counts are millionths held in Redis as decimal strings (what INCRBY writes), up to
-- 9223372036854775807. Lua 5.1 numbers are doubles, exact only below 2^53, and the sliding
-- estimate multiplies a count by up to a year of milliseconds. So counts stay strings: two of
-- at most 15 digits are added as numbers (the common case, and exact), longer ones digit by
-- digit; comparisons are on the strings; and the sliding weight is computed with numbers only
-- when the product is below 2^53, else digit by digit against the window length (which the
-- store keeps below 2^49, so every intermediate stays an exact integer). This is the
-- arithmetic of `windows.rs` and `reservation.rs`, with the same saturation at i64::MAX.

local I64_MAX = '9223372036854775807'
-- Integers of up to 15 digits, and the sum of two, are exact as Lua numbers: the fast path.
local FAST_DIGITS = 15
local EXACT = 9007199254740992 -- 2^53

-- Milliseconds since the Unix epoch: the server's clock, or (tests only) the time given.
local function now_ms(given)
  if given ~= '' then
    return tonumber(given)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- An integral double as digits (exact below 2^53).
local function digits(n)
  return string.format('%.0f', n)
end

-- Compares two non-negative integers written without leading zeros.
local function cmp(a, b)
  if #a ~= #b then
    return #a < #b and -1 or 1
  end
  if a == b then
    return 0
  end
  return a < b and -1 or 1
end

local function join(reversed)
  local n = #reversed
  while n > 1 and reversed[n] == 0 do
    reversed[n] = nil
    n = n - 1
  end
  local out = {}
  for i = n, 1, -1 do
    out[#out + 1] = reversed[i]
  end
  return n == 0 and '0' or table.concat(out)
end

local function add(a, b)
  if #a <= FAST_DIGITS and #b <= FAST_DIGITS then
    return digits(tonumber(a) + tonumber(b))
  end
  local out, carry = {}, 0
  local i, j = #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local d = carry
    if i > 0 then
      d = d + a:byte(i) - 48
      i = i - 1
    end
    if j > 0 then
      d = d + b:byte(j) - 48
      j = j - 1
    end
    if d >= 10 then
      out[#out + 1] = d - 10
      carry = 1
    else
      out[#out + 1] = d
      carry = 0
    end
  end
  return join(out)
end

-- a × m, for an integer 0 ≤ m < 2^49.
local function mul_small(a, m)
  local out, carry = {}, 0
  for i = #a, 1, -1 do
    local t = (a:byte(i) - 48) * m + carry
    local d = t % 10
    out[#out + 1] = d
    carry = (t - d) / 10
  end
  while carry > 0 do
    local d = carry % 10
    out[#out + 1] = d
    carry = (carry - d) / 10
  end
  return join(out)
end

-- ⌈a / m⌉, for an integer 1 ≤ m < 2^49.
local function div_ceil(a, m)
  local out, rem = {}, 0
  for i = 1, #a do
    rem = rem * 10 + a:byte(i) - 48
    local q = math.floor(rem / m)
    local r = rem - q * m
    -- rem / m is rounded to a double; put the quotient digit right if that rounding crossed
    -- an integer.
    if r < 0 then
      q, r = q - 1, r + m
    elseif r >= m then
      q, r = q + 1, r - m
    end
    out[#out + 1] = q
    rem = r
  end
  local quotient = table.concat(out):gsub('^0+', '')
  if quotient == '' then
    quotient = '0'
  end
  if rem > 0 then
    return add(quotient, '1')
  end
  return quotient
end

local function saturate(a)
  if cmp(a, I64_MAX) > 0 then
    return I64_MAX
  end
  return a
end

-- A stored count, '0' when the window has none. Counts are never negative (rollback stops
-- at zero), but a value that is not a plain count is read as none rather than trusted.
local function count(key)
  local v = redis.call('GET', key)
  if not v or v == '' or v:find('^%d+$') == nil then
    return '0'
  end
  return v
end

-- The count a limit is checked against (`windows::Span::estimate`): the current fixed
-- window's count, plus for a sliding window the previous one's weighted by the share of it
-- still inside a window of `len` ending now, rounded up.
local function estimate(base, len, sliding, now)
  local elapsed = math.fmod(now, len)
  local start = now - elapsed
  local current = count(base .. ':' .. digits(start))
  if not sliding or start < len then
    return current, start
  end
  local previous = count(base .. ':' .. digits(start - len))
  if previous == '0' then
    return current, start
  end
  local overlap = len - elapsed
  local weighted
  local p = #previous <= FAST_DIGITS and tonumber(previous)
  if p and p * overlap < EXACT then
    -- ⌈p × overlap / len⌉ with an exact product; the quotient corrected as in div_ceil.
    local n = p * overlap
    local q = math.floor(n / len)
    local r = n - q * len
    if r < 0 then
      q, r = q - 1, r + len
    elseif r >= len then
      q, r = q + 1, r - len
    end
    if r > 0 then
      q = q + 1
    end
    weighted = digits(q)
  else
    weighted = div_ceil(mul_small(previous, overlap), len)
  end
  return saturate(add(current, weighted)), start
end
