-- An update was sent and no answer of Kustom's came back: it may still land at Kustom, up
-- to Kustom's own request lifetime later (ARGV[4]). Until a sync job has re-read the order
-- after that, what Kustom has is not known: sync_hash becomes 'unverified-<pushed hash>',
-- which no pending hash equals (the storefront keeps the iframe suspended, validation
-- rejects, no render looks "unchanged"), and the cart stays on the syncing index. The job
-- that sent the update retries itself: it counts as the queued job.
-- KEYS[1] cart hash, KEYS[2] syncing index, KEYS[3] events channel
-- ARGV: token, order_id, pushed_hash, uncertain_until_ms, now_ms, ttl_s, cart_id
local cart = KEYS[1]
local s = redis.call('HMGET', cart, 'sync_lock', 'order_id', 'sync_uncertain_until')
if s[1] == ARGV[1] then redis.call('HDEL', cart, 'sync_lock', 'sync_lock_until') end
if s[2] ~= ARGV[2] then
  -- The cart moved to another Kustom order meanwhile: nothing can land on that one.
  return {'lost', 0}
end
local until_ms = math.max(tonumber(s[3]) or 0, tonumber(ARGV[4]))
redis.call('HSET', cart, 'sync_uncertain_until', until_ms, 'sync_hash', 'unverified-' .. ARGV[3],
  'sync_queued_at', ARGV[5])
redis.call('ZADD', KEYS[2], 'NX', ARGV[5], ARGV[7])
redis.call('EXPIRE', cart, ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('PUBLISH', KEYS[3], ARGV[7])
return {'uncertain', until_ms}
