-- link_import: write one exported link, unless that very link is already there.
-- Same pod and same kind (persistent or temporary) counts as unchanged and
-- is left as it is, TTL included, so importing a file twice changes nothing.
-- KEYS[1] link key   P:{ns:lk:uid}svc
-- KEYS[2] index key  P:{ns:lk:uid}
-- ARGV[1] service
-- ARGV[2] pod
-- ARGV[3] ttl in ms (at most 315360000000, 10 years); 0 = persistent
-- ARGV[4] '1' = overwrite a link to another pod or of another kind
-- Reply   0 written, 1 unchanged, 2 kept (a different link exists, not overwritten)
--         Error 'CORRUPT <key> <problem>' when a key holds what is not a
--         link (not overwritten, even with ARGV[4]); 'ERR ...' on a bad
--         ttl. Every check runs before the first write.
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
if current then
  if not (string.match(current, '^%d%d?%d?%d?%d?$') and tonumber(current) <= 65535) then
    return corrupt(KEYS[1], "holds '" .. string.gsub(string.sub(current, 1, 40), "[^%w%p ]", '?')
                            .. "', not a pod index")
  end
  local persistent = redis.call('PTTL', KEYS[1]) == -1
  if current == ARGV[2] and persistent == (ttl == 0) then
    return 1
  end
  if ARGV[4] ~= '1' then
    return 2
  end
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
return 0
