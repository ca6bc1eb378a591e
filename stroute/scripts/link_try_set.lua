-- link_try_set: set a link unless a persistent link to ANOTHER pod exists.
-- A persistent link to the same pod is left as it is (never downgraded).
-- KEYS[1] link key   P:{ns:lk:uid}svc
-- KEYS[2] index key  P:{ns:lk:uid}
-- ARGV[1] service
-- ARGV[2] pod
-- ARGV[3] ttl in ms (at most 315360000000, 10 years); 0 = persistent
-- Reply   {ok, pod in force}: ok is 1 when the link now points at ARGV[2].
--         Error 'CORRUPT <key> <problem>' or 'ERR ...' as link_set.lua;
--         every check runs before the first write.
local function corrupt(key, problem)
  return redis.error_reply('CORRUPT ' .. key .. ' ' .. problem)
end
local ttl = tonumber(ARGV[3])
if not ttl or ttl ~= math.floor(ttl) or ttl < 0 or ttl > 315360000000 then
  return redis.error_reply('ERR invalid ttl ' .. ARGV[3])
end
local current = redis.pcall('GET', KEYS[1])
if type(current) == 'table' then
  return corrupt(KEYS[1], 'is a ' .. redis.call('TYPE', KEYS[1]).ok .. ', not a link (a string)')
end
if current and not (string.match(current, '^%d%d?%d?%d?%d?$') and tonumber(current) <= 65535) then
  return corrupt(KEYS[1], "holds '" .. string.gsub(string.sub(current, 1, 40), "[^%w%p ]", '?')
                          .. "', not a pod index")
end
if current and redis.call('PTTL', KEYS[1]) == -1 then
  if current ~= ARGV[2] then
    return {0, current}
  end
  return {1, current}
end
if type(redis.pcall('HGET', KEYS[2], ARGV[1])) == 'table' then  -- HGET: see link_set.lua
  return corrupt(KEYS[2], 'is a ' .. redis.call('TYPE', KEYS[2]).ok .. ', not a link index (a hash)')
end
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return {1, ARGV[2]}
