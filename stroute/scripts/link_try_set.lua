-- link_try_set: set a link unless a persistent link to ANOTHER pod exists.
-- A persistent link to the same pod is left as it is (never downgraded).
-- KEYS[1] link key   P:{ns:lk:uid}svc
-- KEYS[2] index key  P:{ns:lk:uid}
-- ARGV[1] service
-- ARGV[2] pod
-- ARGV[3] ttl in ms; 0 = persistent
-- Reply   {ok, pod in force}: ok is 1 when the link now points at ARGV[2].
local current = redis.call('GET', KEYS[1])
if current and redis.call('PTTL', KEYS[1]) == -1 then
  if current ~= ARGV[2] then
    return {0, current}
  end
  return {1, current}
end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return {1, ARGV[2]}
