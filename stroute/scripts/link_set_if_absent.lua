-- link_set_if_absent: create a link if missing, so racing clients agree.
-- An existing temporary link gets its TTL refreshed (sliding expiry); asking
-- for a persistent link upgrades a temporary one in place with PERSIST.
-- (The seed's script ran EXPIRE key -1 here, which deletes the key.)
-- KEYS[1] link key   P:{ns:lk:uid}svc
-- KEYS[2] index key  P:{ns:lk:uid}
-- ARGV[1] service
-- ARGV[2] candidate pod
-- ARGV[3] ttl in ms; 0 = persistent
-- Reply   {pod in force, created (1/0), was persistent before (1/0)}
-- Every path that writes KEYS[1] reads it last: a write drops the key from
-- the caller's CLIENT TRACKING table, and the read puts it back, so a client
-- that caches the reply hears of the next change made by anyone else.
local ttl = tonumber(ARGV[3])
local current = redis.call('GET', KEYS[1])
if not current then
  if ttl > 0 then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
  else
    redis.call('SET', KEYS[1], ARGV[2])
    redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  end
  redis.call('PTTL', KEYS[1])
  return {ARGV[2], 1, 0}
end
if redis.call('PTTL', KEYS[1]) == -1 then
  return {current, 0, 1}
end
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  redis.call('PERSIST', KEYS[1])
  redis.call('HSET', KEYS[2], ARGV[1], current)
end
redis.call('PTTL', KEYS[1])
return {current, 0, 0}
