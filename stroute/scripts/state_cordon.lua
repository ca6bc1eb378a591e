-- state_cordon: set or clear the operator's cordon of one pod and, in the
-- same atomic step, withhold the pod's state field from the original Go and
-- Java drivers (or give it back), so they stop sending it new users now, not
-- at its next heartbeat. Both hashes share the state key's hash tag.
-- KEYS[1] state hash    pod -> load-millis-state[-epoch] | load-millis-0-[epoch]-state
-- KEYS[2] control hash  pod -> 'cordon'
-- ARGV[1] pod
-- ARGV[2] '1' cordon, '0' uncordon
-- Only a READY field changes form (DOWN is withheld already, DRAINING always
-- is); its load, heartbeat and epoch stay as they are. A state hash of
-- another type (not stroute's data) is left alone (redis.pcall).
-- Reply   1 when the cordon changed, 0 when it already was so
local pod = ARGV[1]
local changed
if ARGV[2] == '1' then
  changed = redis.call('HSET', KEYS[2], pod, 'cordon')
else
  changed = redis.call('HDEL', KEYS[2], pod)
end
local value = redis.pcall('HGET', KEYS[1], pod)
if type(value) == 'string' then
  if ARGV[2] == '1' then
    local load, beat = string.match(value, '^(%d+)%-(%d+)%-1$')
    local epoch = ''
    if not load then
      load, beat, epoch = string.match(value, '^(%d+)%-(%d+)%-1%-(%d+)$')
    end
    if load then
      redis.call('HSET', KEYS[1], pod, load .. '-' .. beat .. '-0-' .. epoch .. '-1')
    end
  else
    local load, beat, epoch = string.match(value, '^(%d+)%-(%d+)%-0%-(%d*)%-1$')
    if load then
      local plain = load .. '-' .. beat .. '-1'
      if epoch ~= '' then
        plain = plain .. '-' .. epoch
      end
      redis.call('HSET', KEYS[1], pod, plain)
    end
  end
end
return changed
