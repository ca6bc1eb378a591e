-- link_get: read one link and its remaining lifetime.
-- KEYS[1] link key  P:{ns:lk:uid}svc
-- ARGV    (none)
-- Reply   {pod, pttl}: pod is nil when there is no link; pttl is -1 for a
--         persistent link, the milliseconds left for a temporary one.
--         Error 'CORRUPT <key> <problem>' when KEYS[1] is not a string.
local pod = redis.pcall('GET', KEYS[1])
if type(pod) == 'table' then
  return redis.error_reply('CORRUPT ' .. KEYS[1] .. ' is a ' .. redis.call('TYPE', KEYS[1]).ok
                           .. ', not a link (a string)')
end
if not pod then
  return {false, -2}
end
return {pod, redis.call('PTTL', KEYS[1])}
