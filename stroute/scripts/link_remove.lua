-- link_remove: delete a link now or after a delay, optionally fenced.
-- A delayed removal turns the link temporary (TTL = the delay, or less if it
-- already expires sooner) and drops it from the persistent index, so the
-- index invariant holds while it waits.
-- An unfenced removal also takes a value that is no pod index: deleting is
-- how an operator clears such a value (a fenced one cannot match it).
-- KEYS[1] link key   P:{ns:lk:uid}svc
-- KEYS[2] index key  P:{ns:lk:uid}
-- ARGV[1] service
-- ARGV[2] delay in ms (at most 315360000000, 10 years); 0 = now
-- ARGV[3] expected pod; '' = remove whatever the link points at
-- Reply   {removed (1/0), value the link held or nil}
--         Error 'CORRUPT <key> <problem>' when a key has the wrong type;
--         'ERR ...' on a bad delay. Every check runs before the first write,
--         and the link key is written before the index, so an error means
--         nothing was written.
local function corrupt(key, problem)
  return redis.error_reply('CORRUPT ' .. key .. ' ' .. problem)
end
local delay = tonumber(ARGV[2])
if not delay or delay ~= math.floor(delay) or delay < 0 or delay > 315360000000 then
  return redis.error_reply('ERR invalid delay ' .. ARGV[2])
end
local current = redis.pcall('GET', KEYS[1])
if type(current) == 'table' then
  return corrupt(KEYS[1], 'is a ' .. redis.call('TYPE', KEYS[1]).ok .. ', not a link (a string)')
end
if not current then
  return {0, false}
end
if ARGV[3] ~= '' and current ~= ARGV[3] then
  return {0, current}
end
if type(redis.pcall('HGET', KEYS[2], ARGV[1])) == 'table' then  -- HGET: see link_set.lua
  return corrupt(KEYS[2], 'is a ' .. redis.call('TYPE', KEYS[2]).ok .. ', not a link index (a hash)')
end
if delay > 0 then
  local pttl = redis.call('PTTL', KEYS[1])
  if pttl < 0 or pttl > delay then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
else
  redis.call('DEL', KEYS[1])
end
redis.call('HDEL', KEYS[2], ARGV[1])
return {1, current}
