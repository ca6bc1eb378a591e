-- link_move: compare-and-set. Points the link at a new pod only if it points
-- at the expected pod now; a temporary link keeps its remaining TTL.
-- KEYS[1] link key   P:{ns:lk:uid}svc
-- KEYS[2] index key  P:{ns:lk:uid}
-- ARGV[1] service
-- ARGV[2] expected pod
-- ARGV[3] new pod
-- Reply   {moved (1/0), pod in force or nil}; a value that is no pod index
--         never equals ARGV[2], so it comes back unmoved for the caller to
--         report. Error 'CORRUPT <key> <problem>' when a key has the wrong
--         type; every check runs before the first write.
-- Reads KEYS[1] last after writing it, so the key stays in the caller's
-- CLIENT TRACKING table (see link_set_if_absent.lua).
local function corrupt(key, problem)
  return redis.error_reply('CORRUPT ' .. key .. ' ' .. problem)
end
local current = redis.pcall('GET', KEYS[1])
if type(current) == 'table' then
  return corrupt(KEYS[1], 'is a ' .. redis.call('TYPE', KEYS[1]).ok .. ', not a link (a string)')
end
if current ~= ARGV[2] then
  return {0, current}
end
local pttl = redis.call('PTTL', KEYS[1])
if pttl > 0 then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', string.format('%d', pttl))
else
  if type(redis.pcall('HGET', KEYS[2], ARGV[1])) == 'table' then  -- HGET: see link_set.lua
    return corrupt(KEYS[2], 'is a ' .. redis.call('TYPE', KEYS[2]).ok .. ', not a link index (a hash)')
  end
  redis.call('SET', KEYS[1], ARGV[3])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
end
redis.call('PTTL', KEYS[1])
return {1, ARGV[3]}
