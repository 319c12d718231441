-- Claim the right to complete a cart: open -> completing, with a token and a lease.
-- The same token (a retried task keeps its id) re-claims; an expired lease is taken over.
-- KEYS[1] cart hash, KEYS[2] claims index (zset: cart -> lease end), KEYS[3] events channel
-- ARGV: token, order_id, now_ms, lease_ms, path, cart_id, index ttl_s
local cart = KEYS[1]
if redis.call('EXISTS', cart) == 0 then return {'unknown'} end
local s = redis.call('HMGET', cart, 'state', 'order_number', 'completion_order_id',
  'completion_lease_until', 'completion_token')
local now = tonumber(ARGV[3])
if s[1] == 'completed' then return {'completed', s[2] or '', s[3] or ''} end
local lease_until = tonumber(s[4]) or 0
if s[1] == 'completing' and s[5] ~= ARGV[1] and lease_until > now then
  return {'busy', tostring(lease_until - now), s[3] or ''}
end
local until_ms = now + tonumber(ARGV[4])
redis.call('HSET', cart, 'state', 'completing', 'completion_token', ARGV[1],
  'completion_order_id', ARGV[2], 'completion_lease_until', until_ms,
  'completion_path', ARGV[5], 'completion_claimed_at', ARGV[3])
redis.call('ZADD', KEYS[2], until_ms, ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[7])
if s[1] ~= 'completing' then redis.call('PUBLISH', KEYS[3], ARGV[6]) end
return {'claimed'}
