-- Kustom applies our callback answer to its own order: the render's payload is both
-- pending and synced. An older version than the stored one is not stored.
-- While an update whose answer never came may still land at Kustom (after Kustom applied
-- this answer, overwriting it), the payload is only pending: the sync job reads the order
-- once nothing can land any more and makes it equal ('applied_unverified').
-- KEYS[1] cart hash, KEYS[2] syncing index, KEYS[3] events channel
-- ARGV: version, render_json, hash, payload_json, now_ms, ttl_s, cart_id
local cart = KEYS[1]
local s = redis.call('HMGET', cart, 'version', 'sync_uncertain_until')
local cur_version = tonumber(s[1])
if cur_version and tonumber(ARGV[1]) < cur_version then
  return 'stale'
end
redis.call('HSET', cart, 'version', ARGV[1], 'render', ARGV[2], 'rendered_at', ARGV[5],
  'pending_hash', ARGV[3], 'pending_payload', ARGV[4], 'pending_at', ARGV[5])
local uncertain = tonumber(s[2])
if uncertain and uncertain > tonumber(ARGV[5]) then
  redis.call('ZADD', KEYS[2], 'NX', ARGV[5], ARGV[7])
  redis.call('EXPIRE', KEYS[2], ARGV[6])
  redis.call('EXPIRE', cart, ARGV[6])
  redis.call('PUBLISH', KEYS[3], ARGV[7])
  return 'applied_unverified'
end
-- Kustom applies the answer after now: past the window, nothing older lands after it.
if uncertain then redis.call('HDEL', cart, 'sync_uncertain_until') end
redis.call('HSET', cart, 'sync_hash', ARGV[3], 'sync_payload', ARGV[4], 'synced_at', ARGV[5],
  'order_updated_at', ARGV[5])
redis.call('ZREM', KEYS[2], ARGV[7])
redis.call('EXPIRE', cart, ARGV[6])
redis.call('PUBLISH', KEYS[3], ARGV[7])
return 'applied'
