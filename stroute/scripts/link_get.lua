-- link_get: read one link and its remaining lifetime.
-- KEYS[1] link key  P:{ns:lk:uid}svc
-- ARGV    (none)
-- Reply   {pod, pttl}: pod is nil when there is no link; pttl is -1 for a
--         persistent link, the milliseconds left for a temporary one.
local pod = redis.call('GET', KEYS[1])
if not pod then
  return {false, -2}
end
return {pod, redis.call('PTTL', KEYS[1])}
