-- A sync job gives up its lease (error or shutdown). Optionally the order is unusable
-- (Kustom answered 404) or read-only (completed on Kustom's side).
-- KEYS[1] cart hash, KEYS[2] syncing index, KEYS[3] events channel
-- ARGV: token, order_id, mark ('' | 'unusable' | 'read_only'), cart_id, now_ms
local cart = KEYS[1]
local s = redis.call('HMGET', cart, 'sync_lock', 'order_id', 'pending_hash', 'pending_payload')
if s[1] == ARGV[1] then redis.call('HDEL', cart, 'sync_lock', 'sync_lock_until') end
if ARGV[3] ~= '' and s[2] == ARGV[2] then
  if ARGV[3] == 'unusable' then
    -- Nothing left to sync to; the next checkout call creates a new order from the render.
    redis.call('HSET', cart, 'order_unusable', '1', 'sync_hash', s[3] or '',
      'sync_payload', s[4] or '')
    redis.call('HDEL', cart, 'sync_uncertain_until')
    redis.call('ZREM', KEYS[2], ARGV[4])
  else
    redis.call('HSET', cart, 'kustom_read_only', ARGV[5])
    redis.call('ZREM', KEYS[2], ARGV[4])
  end
  redis.call('PUBLISH', KEYS[3], ARGV[4])
end
return 'ok'
