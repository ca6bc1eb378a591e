-- link_read_page: values and remaining lifetimes of one page of link keys
-- (a listing reads each SCAN page with one call). Read-only.
-- KEYS    link keys  P:{ns:lk:uid}svc, of any hash tags: a single Redis only
--         (on a cluster the store reads a page with a pipeline per node)
-- ARGV    (none)
-- Reply   {value1, pttl1, value2, pttl2, ...}: a value is nil when the key is
--         gone or holds no string (MGET reads the values); pttl is -2 when
--         gone, -1 when persistent, else the milliseconds left.
local out = {}
local chunk = 1000  -- unpack() takes a bounded number of values
for first = 1, #KEYS, chunk do
  local last = math.min(first + chunk - 1, #KEYS)
  local values = redis.call('MGET', unpack(KEYS, first, last))
  for i = first, last do
    out[2 * i - 1] = values[i - first + 1]
    out[2 * i] = redis.call('PTTL', KEYS[i])
  end
end
return out
