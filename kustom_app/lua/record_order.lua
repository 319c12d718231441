-- A new Kustom order was created for the cart from the payload with hash ARGV[2].
-- KEYS[1] cart hash, KEYS[2] syncing index, KEYS[3] events channel, KEYS[4] open orders
-- ARGV: order_id, hash, payload_json, now_ms, ttl_s, cart_id, first_check_ms
local cart = KEYS[1]
local pending = redis.call('HGET', cart, 'pending_hash')
redis.call('HSET', cart, 'order_id', ARGV[1], 'order_created_at', ARGV[4],
  'order_updated_at', ARGV[4], 'order_unusable', '0', 'sync_hash', ARGV[2], 'sync_payload', ARGV[3])
-- (An update to an older order that may still land there says nothing about this one.)
redis.call('HDEL', cart, 'kustom_read_only', 'sync_lock', 'sync_lock_until',
  'sync_uncertain_until')
local enqueue = 0
if not pending then
  pending = ARGV[2]
  redis.call('HSET', cart, 'pending_hash', ARGV[2], 'pending_payload', ARGV[3],
    'pending_at', ARGV[4])
end
if pending ~= ARGV[2] then
  -- A newer render arrived while the order was being created.
  redis.call('ZADD', KEYS[2], 'NX', ARGV[4], ARGV[6])
  redis.call('HSET', cart, 'sync_queued_at', ARGV[4])
  enqueue = 1
else
  redis.call('ZREM', KEYS[2], ARGV[6])
end
-- The sweeper's net for a payment whose push never arrives (firewall, lost callback).
redis.call('ZADD', KEYS[4], tonumber(ARGV[4]) + tonumber(ARGV[7]), ARGV[6])
redis.call('EXPIRE', KEYS[4], ARGV[5])
redis.call('EXPIRE', cart, ARGV[5])
redis.call('PUBLISH', KEYS[3], ARGV[6])
return {pending, enqueue}
