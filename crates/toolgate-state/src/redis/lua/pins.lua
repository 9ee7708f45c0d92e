-- Tool pins (`pins::PinStore`); each entry point below is its own script, this library
-- followed by one `return <step>()`.
--
-- KEYS[1]  "{tag}:pins": one hash; field "P/<server>/<key>" holds the pinned entry and
--          "N/<server>/<key>" the pending one, each "digest \t body \t seen_ms \t definition"
-- ARGV[1]  the server ("" for every server, where a step allows it)

local pins = KEYS[1]
local server = ARGV[1]

local function digest_of(entry)
  return string.match(entry, '^[^\t]*')
end

-- Mirrors `pins::observe_one`. ARGV[2] "1" pins keys without a pin; then (key, digest,
-- entry) triples. Returns the pinned and pending entry ("" for none) of each key.
local function observe()
  local pin_if_new = ARGV[2] == '1'
  local out = {}
  for i = 3, #ARGV, 3 do
    local key, digest, entry = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local pf = 'P/' .. server .. '/' .. key
    local nf = 'N/' .. server .. '/' .. key
    local pinned = redis.call('HGET', pins, pf)
    local pending = redis.call('HGET', pins, nf)
    if not pinned and pin_if_new then
      redis.call('HSET', pins, pf, entry)
      pinned = entry
      if pending then
        redis.call('HDEL', pins, nf)
        pending = false
      end
    elseif pinned and digest_of(pinned) == digest then
      if pending then
        redis.call('HDEL', pins, nf)
        pending = false
      end
    elseif not pending or digest_of(pending) ~= digest then
      redis.call('HSET', pins, nf, entry)
      pending = entry
    end
    out[#out + 1] = pinned or ''
    out[#out + 1] = pending or ''
  end
  return out
end

-- ARGV[2] the key. pending -> pinned; returns the new pin, or false when nothing waits.
local function approve()
  local pf = 'P/' .. server .. '/' .. ARGV[2]
  local nf = 'N/' .. server .. '/' .. ARGV[2]
  local pending = redis.call('HGET', pins, nf)
  if not pending then
    return false
  end
  redis.call('HSET', pins, pf, pending)
  redis.call('HDEL', pins, nf)
  return pending
end

local function mine(field)
  return server == '' or string.sub(field, 3, 3 + #server) == server .. '/'
end

-- Every field of the server (or of all), flat: field, entry, field, entry, ...
local function list()
  local all = redis.call('HGETALL', pins)
  local out = {}
  for i = 1, #all, 2 do
    if mine(all[i]) then
      out[#out + 1] = all[i]
      out[#out + 1] = all[i + 1]
    end
  end
  return out
end

-- Deletes the server's fields (or all); returns how many records (server, key) went.
local function reset()
  local fields = redis.call('HKEYS', pins)
  local records = {}
  local count = 0
  for _, field in ipairs(fields) do
    if mine(field) then
      redis.call('HDEL', pins, field)
      local record = string.sub(field, 3)
      if not records[record] then
        records[record] = true
        count = count + 1
      end
    end
  end
  return count
end
