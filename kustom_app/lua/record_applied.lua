-- Kustom applied our callback answer to its own order: the render's payload is both
-- pending and synced. An older version than the stored one is not stored.
-- KEYS[1] cart hash, KEYS[2] syncing index, KEYS[3] events channel
-- ARGV: version, render_json, hash, payload_json, now_ms, ttl_s, cart_id
local cart = KEYS[1]
local cur_version = tonumber(redis.call('HGET', cart, 'version'))
if cur_version and tonumber(ARGV[1]) < cur_version then
  return 'stale'
end
redis.call('HSET', cart, 'version', ARGV[1], 'render', ARGV[2], 'rendered_at', ARGV[5],
  'pending_hash', ARGV[3], 'pending_payload', ARGV[4], 'pending_at', ARGV[5],
  'sync_hash', ARGV[3], 'sync_payload', ARGV[4], 'synced_at', ARGV[5],
  'order_updated_at', ARGV[5])
redis.call('ZREM', KEYS[2], ARGV[7])
redis.call('EXPIRE', cart, ARGV[6])
redis.call('PUBLISH', KEYS[3], ARGV[7])
return 'applied'
