-- link_remove: delete a link now or after a delay, optionally fenced.
-- A delayed removal turns the link temporary (TTL = the delay, or less if it
-- already expires sooner) and drops it from the persistent index, so the
-- index invariant holds while it waits.
-- KEYS[1] link key   P:{ns:lk:uid}svc
-- KEYS[2] index key  P:{ns:lk:uid}
-- ARGV[1] service
-- ARGV[2] delay in ms; 0 = now
-- ARGV[3] expected pod; '' = remove whatever the link points at
-- Reply   {removed (1/0), pod the link pointed at or nil}
local current = redis.call('GET', KEYS[1])
if not current then
  return {0, false}
end
if ARGV[3] ~= '' and current ~= ARGV[3] then
  return {0, current}
end
local delay = tonumber(ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[1])
if delay > 0 then
  local pttl = redis.call('PTTL', KEYS[1])
  if pttl < 0 or pttl > delay then
    redis.call('PEXPIRE', KEYS[1], delay)
  end
else
  redis.call('DEL', KEYS[1])
end
return {1, current}
