-- link_set: force a link, persistent or temporary.
-- KEYS[1] link key   P:{ns:lk:uid}svc
-- KEYS[2] index key  P:{ns:lk:uid}      (persistent links of the user)
-- ARGV[1] service
-- ARGV[2] pod
-- ARGV[3] ttl in ms; 0 = persistent
-- Reply   previous pod, or nil when there was no link.
local previous = redis.call('GET', KEYS[1])
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return previous
