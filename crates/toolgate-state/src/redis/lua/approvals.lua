-- Approval records (`approvals::ApprovalStore`); each entry point below is its own script,
-- this library followed by one `return <step>()`.
--
-- KEYS[1]  record key prefix "{tag}:apr:" (the script appends the id; one hash per record)
-- KEYS[2]  fingerprint index prefix "{tag}:apr-fp:" (a set of ids per fingerprint)
-- KEYS[3]  "{tag}:apr-list": every id, scored by its creation time
-- ARGV[1]  "" to read the server's clock, or the time in ms (tests only)

if redis.replicate_commands then
  redis.replicate_commands()
end

local function now_ms(given)
  if given ~= '' then
    return tonumber(given)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function digits(n)
  return string.format('%.0f', n)
end

local now = now_ms(ARGV[1])

local function load(id)
  local h = redis.call('HGETALL', KEYS[1] .. id)
  if #h == 0 then
    return nil
  end
  local r = {}
  for i = 1, #h, 2 do
    r[h[i]] = h[i + 1]
  end
  return r
end

local function flat(r)
  local out = {}
  for k, v in pairs(r) do
    out[#out + 1] = k
    out[#out + 1] = v
  end
  return out
end

local function save(r)
  redis.call('HSET', KEYS[1] .. r.id, unpack(flat(r)))
end

local function effective(r)
  if (r.state == 'pending' or r.state == 'approved') and tonumber(r.expires_ms) <= now then
    return 'expired'
  end
  return r.state
end

local function transition(id, from, step)
  local r = load(id)
  if not r then
    return {'notfound'}
  end
  local state = effective(r)
  if state ~= from then
    return {'conflict', state}
  end
  step(r)
  r.updated_ms = digits(now)
  save(r)
  r.state = effective(r)
  return {'ok', flat(r)}
end

local function admit()
  local new = {}
  for i = 2, #ARGV, 2 do
    new[ARGV[i]] = ARGV[i + 1]
  end
  local index = KEYS[2] .. new.fingerprint
  local candidates = {}
  for _, id in ipairs(redis.call('SMEMBERS', index)) do
    local r = load(id)
    if not r then
      redis.call('SREM', index, id)
    elseif r.state == 'pending' or r.state == 'approved' or r.state == 'denied' then
      candidates[#candidates + 1] = r
    end
  end
  table.sort(candidates, function(a, b)
    local x, y = tonumber(a.created_ms), tonumber(b.created_ms)
    if x ~= y then
      return x > y
    end
    return a.id > b.id
  end)
  local expired = {}
  local standing = nil
  for _, r in ipairs(candidates) do
    if effective(r) == 'expired' then
      r.state = 'expired'
      r.updated_ms = digits(now)
      save(r)
      expired[#expired + 1] = flat(r)
    elseif standing == nil and tonumber(r.expires_ms) > now then
      standing = r
    end
  end
  if standing then
    local outcome = 'pending'
    if standing.state == 'approved' then
      standing.state = 'consumed'
      standing.consumed_ms = digits(now)
      standing.updated_ms = digits(now)
      save(standing)
      outcome = 'consumed'
    elseif standing.state == 'denied' then
      outcome = 'denied'
    end
    return {outcome, flat(standing), expired}
  end
  new.state = 'pending'
  new.created_ms = digits(now)
  new.expires_ms = digits(now + tonumber(new.timeout_ms))
  new.updated_ms = digits(now)
  save(new)
  redis.call('SADD', index, new.id)
  redis.call('ZADD', KEYS[3], digits(now), new.id)
  return {'created', flat(new), expired}
end

local function get()
  local r = load(ARGV[2])
  if not r then
    return {}
  end
  r.state = effective(r)
  return flat(r)
end

-- ARGV[2] "1" for every record; ARGV[3] the limit.
local function list()
  local all = ARGV[2] == '1'
  local limit = tonumber(ARGV[3])
  local out = {}
  if limit <= 0 then
    return out
  end
  for _, id in ipairs(redis.call('ZREVRANGE', KEYS[3], 0, -1)) do
    local r = load(id)
    if r and (all or (r.state == 'pending' and tonumber(r.expires_ms) > now)) then
      r.state = effective(r)
      out[#out + 1] = flat(r)
      if #out >= limit then
        break
      end
    end
  end
  return out
end

-- ARGV[2] id, ARGV[3] "approve" or "deny", ARGV[4] who, ARGV[5] "1" if ARGV[6] (note or
-- reason) is given.
local function decide()
  return transition(ARGV[2], 'pending', function(r)
    r.decided_ms = digits(now)
    r.decided_by = ARGV[4]
    r.expires_ms = digits(now + tonumber(r.timeout_ms))
    if ARGV[3] == 'approve' then
      r.state = 'approved'
      if ARGV[5] == '1' then
        r.note = ARGV[6]
      end
    else
      r.state = 'denied'
      r.reason = ARGV[6]
    end
  end)
end

local function consume()
  return transition(ARGV[2], 'approved', function(r)
    r.state = 'consumed'
    r.consumed_ms = digits(now)
  end)
end

local function release()
  return transition(ARGV[2], 'consumed', function(r)
    r.state = 'approved'
  end)
end

-- ARGV[2] id, ARGV[3] reason.
local function withdraw()
  return transition(ARGV[2], 'pending', function(r)
    r.state = 'withdrawn'
    r.reason = ARGV[3]
  end)
end

-- ARGV[2] the retention in ms.
local function expire()
  local horizon = now - tonumber(ARGV[2])
  local expired = {}
  for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
    local r = load(id)
    if not r then
      redis.call('ZREM', KEYS[3], id)
    elseif (r.state == 'pending' or r.state == 'approved') then
      if tonumber(r.expires_ms) <= now then
        r.state = 'expired'
        r.updated_ms = digits(now)
        save(r)
        expired[#expired + 1] = flat(r)
      end
    elseif math.max(tonumber(r.expires_ms), tonumber(r.updated_ms)) < horizon then
      redis.call('DEL', KEYS[1] .. id)
      redis.call('ZREM', KEYS[3], id)
      redis.call('SREM', KEYS[2] .. r.fingerprint, id)
    end
  end
  return expired
end
