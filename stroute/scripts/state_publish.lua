-- state_publish: one heartbeat of one pod, stamped with Redis's clock so
-- readers judge staleness against the same clock.
-- KEYS[1] state hash    P:{ns:state:svc}
-- KEYS[2] control hash  P:{ns:state:svc}:ctl
-- ARGV[1] pod
-- ARGV[2] load
-- ARGV[3] routing state (0 DOWN, 1 READY, 2 DRAINING)
-- ARGV[4] epoch in ms ('' = none)
-- ARGV[5] 1 = also return both hashes whole (pod 0 summarises the service)
-- Reply   {heartbeat ms, override of this pod or nil,
--          state fields (flat) or nil, control fields (flat) or nil}
local now = redis.call('TIME')
local millis = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local value = ARGV[2] .. '-' .. string.format('%d', millis) .. '-' .. ARGV[3]
if ARGV[4] ~= '' then
  value = value .. '-' .. ARGV[4]
end
redis.call('HSET', KEYS[1], ARGV[1], value)
local states, controls = false, false
if ARGV[5] == '1' then
  states = redis.call('HGETALL', KEYS[1])
  controls = redis.call('HGETALL', KEYS[2])
end
return {millis, redis.call('HGET', KEYS[2], ARGV[1]), states, controls}
