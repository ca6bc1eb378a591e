-- link_import: write one exported link, unless that very link is already there.
-- Same pod and same kind (persistent or temporary) counts as unchanged and
-- is left as it is, TTL included, so importing a file twice changes nothing.
-- KEYS[1] link key   P:{ns:lk:uid}svc
-- KEYS[2] index key  P:{ns:lk:uid}
-- ARGV[1] service
-- ARGV[2] pod
-- ARGV[3] ttl in ms; 0 = persistent
-- ARGV[4] '1' = overwrite a link to another pod or of another kind
-- Reply   0 written, 1 unchanged, 2 kept (a different link exists, not overwritten)
local ttl = tonumber(ARGV[3])
local current = redis.call('GET', KEYS[1])
if current then
  local persistent = redis.call('PTTL', KEYS[1]) == -1
  if current == ARGV[2] and persistent == (ttl == 0) then
    return 1
  end
  if ARGV[4] ~= '1' then
    return 2
  end
end
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return 0
