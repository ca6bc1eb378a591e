-- state_publish: one heartbeat of one pod, stamped with Redis's clock so
-- readers judge staleness against the same clock. The pod's field is only
-- written when this instance may own it (ARGV[6]), so two instances of one
-- pod never overwrite each other in turn: the check and the write are one
-- atomic step.
-- KEYS[1] state hash    P:{ns:state:svc}        pod -> load-millis-state[-epoch], or load-millis-0-[epoch]-state
--                                               for a pod no original driver may send new users to
--                                               (DRAINING, or cordoned: see stroute/podstate.py)
-- KEYS[2] control hash  P:{ns:state:svc}:ctl    pod -> operator override
-- KEYS[3] notes hash    P:{ns:state:svc}:notes  'POD:reason' -> why the pod is not plainly READY,
--                                               'POD:epochs' -> 'changedMs:epoch,...' newest first
-- ARGV[1] pod
-- ARGV[2] load
-- ARGV[3] routing state (0 DOWN, 1 READY, 2 DRAINING)
-- ARGV[4] epoch in ms ('' = none)
-- ARGV[5] 1 = also return both hashes whole (pod 0 summarises the service)
-- ARGV[6] claim: 'start'    refuse while the field is alive under another epoch
--                'continue' refuse when the field carries another epoch (someone took the pod over)
--                'force'    write whatever the field holds (takeover)
--         A field without an epoch (an original Go/Java driver, 'serve --once') names no
--         instance and never refuses.
-- ARGV[7] expire window in ms (alive = heartbeat younger than this and state not DOWN)
-- ARGV[8] reason: 'keep' leave the note as it is, 'set' write ARGV[9], 'clear' remove it
-- ARGV[9] reason text
-- ARGV[10] epochs kept in the 'POD:epochs' note
-- The control and notes hashes only add to the heartbeat: one of the wrong
-- type (data stroute did not write) is read as empty and left as it is
-- (redis.pcall), so it never stops a pod from publishing its state.
-- Reply   {heartbeat ms, override of this pod or nil,
--          state fields (flat) or nil, control fields (flat) or nil,
--          the field as it was before (or nil), 1 written / 0 refused (nothing written)}
local now = redis.call('TIME')
local millis = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local pod, epoch, claim = ARGV[1], ARGV[4], ARGV[6]
local previous = redis.call('HGET', KEYS[1], pod)
local before = ''
if previous then
  local _, beat, state, found = string.match(previous, '^(%d+)-(%d+)-([012])-?(%d*)$')
  if not beat then
    _, beat, found, state = string.match(previous, '^(%d+)%-(%d+)%-0%-(%d*)%-([12])$')
  end
  if beat then
    before = found
    if found ~= '' and found ~= epoch then
      local alive = state ~= '0' and millis - tonumber(beat) <= tonumber(ARGV[7])
      if claim == 'continue' or (claim == 'start' and alive) then
        return {millis, false, false, false, previous, 0}
      end
    end
  end
end
-- Read before the write: a cordon withholds the pod from the originals in this very heartbeat.
local control = redis.pcall('HGET', KEYS[2], pod)
if type(control) ~= 'string' then
  control = false
end
local value = ARGV[2] .. '-' .. string.format('%d', millis) .. '-'
if ARGV[3] == '2' or (ARGV[3] == '1' and control == 'cordon') then
  value = value .. '0-' .. epoch .. '-' .. ARGV[3]
else
  value = value .. ARGV[3]
  if epoch ~= '' then
    value = value .. '-' .. epoch
  end
end
redis.call('HSET', KEYS[1], pod, value)
if epoch ~= '' and before ~= epoch then
  -- A new incarnation, a takeover or a Redis that lost the field: keep a
  -- short history, so readers can tell a pod whose epoch keeps changing.
  local field = pod .. ':epochs'
  local history = redis.pcall('HGET', KEYS[3], field)
  if type(history) ~= 'string' then
    history = ''
  end
  if string.match(history, '^%d+:(%d+)') ~= epoch then
    local kept, entries = {string.format('%d', millis) .. ':' .. epoch}, tonumber(ARGV[10])
    for entry in string.gmatch(history, '[^,]+') do
      if #kept >= entries then break end
      kept[#kept + 1] = entry
    end
    redis.pcall('HSET', KEYS[3], field, table.concat(kept, ','))
  end
end
if ARGV[8] == 'set' then
  redis.pcall('HSET', KEYS[3], pod .. ':reason', ARGV[9])
elseif ARGV[8] == 'clear' then
  redis.pcall('HDEL', KEYS[3], pod .. ':reason')
end
local states, controls = false, false
if ARGV[5] == '1' then
  states = redis.call('HGETALL', KEYS[1])
  controls = redis.pcall('HGETALL', KEYS[2])
  if controls.err then
    controls = {}
  end
end
return {millis, control, states, controls, previous or false, 1}
