-- state_snapshot: every pod of one service, its overrides, what the pods
-- noted, and Redis's clock, in one round trip (every key shares the hash
-- tag {ns:state:svc}). A client driver that places users also registers
-- itself among the service's live gateways here and gets their count, so
-- placement knows how many gateways send users between two heartbeats
-- without a command of its own.
-- KEYS[1] state hash     P:{ns:state:svc}
-- KEYS[2] control hash   P:{ns:state:svc}:ctl
-- KEYS[3] notes hash     P:{ns:state:svc}:notes     ('POD:epochs': when each epoch first reached the field)
-- KEYS[4] gateways zset  P:{ns:state:svc}:gateways  gateway id -> last snapshot read, Redis ms
-- ARGV[1] gateway id ('': a reader that places nothing; neither registered nor counted;
--         nor is anyone while the service has no pod: nothing is placed, and nothing written)
-- ARGV[2] ms after its last read that a gateway stops being counted
-- Reply   {state fields (flat HGETALL), control fields (flat), seconds, microseconds,
--          notes fields (flat), live gateways (0 when ARGV[1] is '')}
-- The notes and the gateways only refine placement: one of the wrong type
-- (data stroute did not write) reads as empty and is left as it is.
local now = redis.call('TIME')
local states, controls = redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])
local notes = redis.pcall('HGETALL', KEYS[3])
if notes.err then
  notes = {}
end
local gateways = 0
if ARGV[1] ~= '' and #states > 0 then
  local millis = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  if type(redis.pcall('ZADD', KEYS[4], millis, ARGV[1])) == 'number' then
    redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. string.format('%d', millis - tonumber(ARGV[2])))
    gateways = redis.call('ZCARD', KEYS[4])
  end
end
return {states, controls, now[1], now[2], notes, gateways}
