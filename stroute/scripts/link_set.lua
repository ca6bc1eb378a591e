-- link_set: force a link, persistent or temporary.
-- KEYS[1] link key   P:{ns:lk:uid}svc
-- KEYS[2] index key  P:{ns:lk:uid}      (persistent links of the user)
-- ARGV[1] service
-- ARGV[2] pod
-- ARGV[3] ttl in ms (at most 315360000000, 10 years); 0 = persistent
-- Reply   previous pod, or nil when there was no link.
--         Error 'CORRUPT <key> <problem>' when a key holds what is not a
--         link (wrong type, or a value that is no pod index); 'ERR ...' on a
--         bad argument. Every check runs before the first write, so an
--         error means nothing was written. The index is checked with HGET,
--         which a namespace user's ACL rule has always allowed; TYPE runs
--         only to name what is there instead.
local function corrupt(key, problem)
  return redis.error_reply('CORRUPT ' .. key .. ' ' .. problem)
end
local ttl = tonumber(ARGV[3])
if not ttl or ttl ~= math.floor(ttl) or ttl < 0 or ttl > 315360000000 then
  return redis.error_reply('ERR invalid ttl ' .. ARGV[3])
end
local previous = redis.pcall('GET', KEYS[1])
if type(previous) == 'table' then
  return corrupt(KEYS[1], 'is a ' .. redis.call('TYPE', KEYS[1]).ok .. ', not a link (a string)')
end
if previous and not (string.match(previous, '^%d%d?%d?%d?%d?$') and tonumber(previous) <= 65535) then
  return corrupt(KEYS[1], "holds '" .. string.gsub(string.sub(previous, 1, 40), "[^%w%p ]", '?')
                          .. "', not a pod index")
end
if type(redis.pcall('HGET', KEYS[2], ARGV[1])) == 'table' then
  return corrupt(KEYS[2], 'is a ' .. redis.call('TYPE', KEYS[2]).ok .. ', not a link index (a hash)')
end
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return previous
