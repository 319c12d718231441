-- A push landed at Kustom (or a read showed Kustom has that payload): record what Kustom now
-- has; hand back newer work if any.
-- KEYS[1] cart hash, KEYS[2] syncing index, KEYS[3] events channel
-- ARGV: token, pushed_hash, now_ms, lease_ms, ttl_s, cart_id, order_id, pushed_payload_json,
--       sent_ms (when the push or read was sent)
local cart = KEYS[1]
local s = redis.call('HMGET', cart, 'sync_lock', 'pending_hash', 'pending_payload', 'order_id',
  'pending_at', 'sync_uncertain_until')
if s[1] ~= ARGV[1] then return {'lost'} end
if s[4] ~= ARGV[7] then
  -- The cart moved to another Kustom order meanwhile; this push says nothing about it.
  redis.call('HDEL', cart, 'sync_lock', 'sync_lock_until')
  return {'lost'}
end
local uncertain = tonumber(s[6])
if uncertain then
  if uncertain > tonumber(ARGV[9]) then
    -- An update without an answer may still land after this one: what Kustom ends with is
    -- not known yet. (A job only sends after the window; this is a job that lost its lease.)
    redis.call('HDEL', cart, 'sync_lock', 'sync_lock_until')
    redis.call('HSET', cart, 'sync_queued_at', ARGV[3])
    return {'uncertain', s[2], tostring(math.max(0, uncertain - tonumber(ARGV[3])))}
  end
  -- Sent after the window: nothing older can land after it.
  redis.call('HDEL', cart, 'sync_uncertain_until')
end
redis.call('HSET', cart, 'sync_hash', ARGV[2], 'sync_payload', ARGV[8], 'synced_at', ARGV[3],
  'order_updated_at', ARGV[3])
redis.call('EXPIRE', cart, ARGV[5])
redis.call('PUBLISH', KEYS[3], ARGV[6])
if s[2] == ARGV[2] then
  redis.call('HDEL', cart, 'sync_lock', 'sync_lock_until')
  redis.call('ZREM', KEYS[2], ARGV[6])
  return {'done', ARGV[2], s[5] or ''}
end
if not s[3] or s[3] == '' then
  -- The newest render cannot be paid for: nothing to push; the iframe stays suspended.
  redis.call('HDEL', cart, 'sync_lock', 'sync_lock_until')
  redis.call('ZREM', KEYS[2], ARGV[6])
  return {'unpayable', s[2]}
end
-- The cart changed while we pushed: keep the lease and push the newer payload next.
redis.call('HSET', cart, 'sync_lock_until', tonumber(ARGV[3]) + tonumber(ARGV[4]))
return {'again', s[2], s[3]}
