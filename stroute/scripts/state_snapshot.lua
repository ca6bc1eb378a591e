-- state_snapshot: every pod of one service, its overrides, and Redis's clock,
-- in one round trip (both hashes share the hash tag {ns:state:svc}).
-- KEYS[1] state hash    P:{ns:state:svc}
-- KEYS[2] control hash  P:{ns:state:svc}:ctl
-- ARGV    (none)
-- Reply   {state fields (flat HGETALL), control fields (flat), seconds, microseconds}
local now = redis.call('TIME')
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]), now[1], now[2]}
