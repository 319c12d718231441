-- A sync job starts: take the cart's push lease, or say why there is nothing to do.
-- KEYS[1] cart hash, KEYS[2] syncing index
-- ARGV: token, now_ms, lease_ms, cart_id
local cart = KEYS[1]
local now = tonumber(ARGV[2])
redis.call('HDEL', cart, 'sync_queued_at')
local s = redis.call('HMGET', cart, 'pending_hash', 'sync_hash', 'order_id', 'order_unusable',
  'sync_lock', 'sync_lock_until', 'pending_payload', 'state', 'last_event_at', 'prev_event_at',
  'kustom_read_only', 'sync_uncertain_until')
local pending, sync, order_id = s[1], s[2], s[3]
if not pending then return {'gone'} end
-- Nothing a sync job can do for these: take the cart off the syncing index so the
-- sweeper does not keep re-queueing it (a new render puts it back when there is work).
if s[8] == 'completed' or s[8] == 'completing' then
  redis.call('ZREM', KEYS[2], ARGV[4])
  return {'closed'}
end
if s[11] and s[11] ~= '' then
  -- Kustom answered 403 READ_ONLY_ORDER (the shopper paid): no update can land.
  redis.call('ZREM', KEYS[2], ARGV[4])
  return {'read_only'}
end
if not order_id or s[4] == '1' then
  redis.call('ZREM', KEYS[2], ARGV[4])
  return {'no_order'}
end
if pending == sync then
  redis.call('ZREM', KEYS[2], ARGV[4])
  return {'in_sync', pending}
end
if not s[7] or s[7] == '' then
  redis.call('ZREM', KEYS[2], ARGV[4])
  return {'unpayable', pending}
end
-- An update whose answer never came may still land at Kustom until this time: nobody pushes
-- or marks anything synced before. The job comes back then (it counts as the queued one).
local uncertain = tonumber(s[12])
if uncertain and uncertain > now then
  redis.call('HSET', cart, 'sync_queued_at', ARGV[2])
  redis.call('ZADD', KEYS[2], 'NX', now, ARGV[4])
  return {'uncertain', pending, '', '', tostring(uncertain - now)}
end
local lock_until = tonumber(s[6])
if s[5] and lock_until and lock_until > now then
  return {'busy', pending, '', '', tostring(lock_until - now)}
end
redis.call('HSET', cart, 'sync_lock', ARGV[1], 'sync_lock_until', now + tonumber(ARGV[3]))
if uncertain then
  -- Nothing can land any more, but what Kustom has is unknown: read it before pushing.
  return {'verify', pending, s[7], order_id, '', s[9] or '0', s[10] or '0'}
end
-- With when the last two cart events came: the job waits out a burst before pushing.
return {'push', pending, s[7], order_id, '', s[9] or '0', s[10] or '0'}
