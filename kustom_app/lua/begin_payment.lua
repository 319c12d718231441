-- A task is about to call Kustom for a queued operation: take its lease.
-- The same token (a redelivered task keeps its id) takes the lease again; an expired lease
-- is taken over. A lease alone never makes the call safe (a paused worker can outlive it):
-- the idempotency key and the reference check at Kustom do that.
-- KEYS[1] operation hash
-- ARGV: token, now_ms, lease_ms
local record = KEYS[1]
local s = redis.call('HMGET', record, 'status', 'lease_token', 'lease_until', 'attempt')
if not s[1] then return {'gone'} end
if s[1] ~= 'queued' then return {'done', s[1]} end
local now = tonumber(ARGV[2])
local lease_until = tonumber(s[3]) or 0
if s[2] and s[2] ~= ARGV[1] and lease_until > now then
  return {'busy', tostring(lease_until - now)}
end
redis.call('HSET', record, 'lease_token', ARGV[1], 'lease_until', now + tonumber(ARGV[3]),
  'started_at', ARGV[2])
redis.call('HINCRBY', record, 'runs', 1)
return {'run', s[4] or '1'}
