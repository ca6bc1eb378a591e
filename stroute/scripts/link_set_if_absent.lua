-- link_set_if_absent: create a link if missing, so racing clients agree.
-- An existing temporary link gets its TTL refreshed once less than half of
-- the asked TTL is left (sliding expiry with the granularity ASP.NET's sliding
-- expiration uses): a refresh is a write, and every other gateway caching the
-- link is told of it, so it happens at most once per half TTL, not on every
-- lookup. Asking for a persistent link upgrades a temporary one in place
-- with PERSIST.
-- (The seed's script ran EXPIRE key -1 here, which deletes the key.)
-- KEYS[1] link key   P:{ns:lk:uid}svc
-- KEYS[2] index key  P:{ns:lk:uid}
-- ARGV[1] service
-- ARGV[2] candidate pod
-- ARGV[3] ttl in ms (at most 315360000000, 10 years); 0 = persistent
-- Reply   {pod in force, created (1/0), was persistent before (1/0),
--          ms the link has left (-1: persistent)}
--         Error 'CORRUPT <key> <problem>' or 'ERR ...' as link_set.lua;
--         every check runs before the first write. The index key is
--         checked only on the paths that write it: a new temporary link,
--         the placement's usual case, costs no extra command.
-- Every path that writes KEYS[1] reads it last: a write drops the key from
-- the caller's CLIENT TRACKING table, and the read puts it back, so a client
-- that caches the reply hears of the next change made by anyone else.
local function corrupt(key, problem)
  return redis.error_reply('CORRUPT ' .. key .. ' ' .. problem)
end
local function index_ok()  -- HGET: see link_set.lua
  if type(redis.pcall('HGET', KEYS[2], ARGV[1])) == 'table' then
    return false, redis.call('TYPE', KEYS[2]).ok
  end
  return true
end
local ttl = tonumber(ARGV[3])
if not ttl or ttl ~= math.floor(ttl) or ttl < 0 or ttl > 315360000000 then
  return redis.error_reply('ERR invalid ttl ' .. ARGV[3])
end
local current = redis.pcall('GET', KEYS[1])
if type(current) == 'table' then
  return corrupt(KEYS[1], 'is a ' .. redis.call('TYPE', KEYS[1]).ok .. ', not a link (a string)')
end
if not current then
  if ttl > 0 then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  else
    local ok, index = index_ok()
    if not ok then
      return corrupt(KEYS[2], 'is a ' .. index .. ', not a link index (a hash)')
    end
    redis.call('SET', KEYS[1], ARGV[2])
    redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  end
  redis.call('PTTL', KEYS[1])
  return {ARGV[2], 1, 0, ttl > 0 and ttl or -1}
end
if not (string.match(current, '^%d%d?%d?%d?%d?$') and tonumber(current) <= 65535) then
  return corrupt(KEYS[1], "holds '" .. string.gsub(string.sub(current, 1, 40), "[^%w%p ]", '?')
                          .. "', not a pod index")
end
local left = redis.call('PTTL', KEYS[1])
if left == -1 then
  return {current, 0, 1, -1}
end
if ttl > 0 then
  if left * 2 >= ttl then
    return {current, 0, 0, left}
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {current, 0, 0, redis.call('PTTL', KEYS[1])}
else
  local ok, index = index_ok()
  if not ok then
    return corrupt(KEYS[2], 'is a ' .. index .. ', not a link index (a hash)')
  end
  redis.call('PERSIST', KEYS[1])
  redis.call('HSET', KEYS[2], ARGV[1], current)
end
redis.call('PTTL', KEYS[1])
return {current, 0, 0, -1}
