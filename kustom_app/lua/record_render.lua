-- Store a cart render and decide whether Kustom's order needs a sync.
-- KEYS[1] cart hash, KEYS[2] syncing index (zset), KEYS[3] events channel,
-- KEYS[4] the sync job queue (a Celery broker list; unused without a message),
-- KEYS[5] the cart's timeline (list; kustom_app/timeline.py)
-- ARGV: version, render_json, hash, payload_json, now_ms, ttl_s, queued_stale_ms, cart_id,
--       job message ('' = the caller queues the job; returns enqueue 1 instead of 2): a
--       broker message whose body has @@payload@@ where the payload's JSON text goes,
--       escaped as a JSON string (the body is itself a JSON string in the message).
--       The message is a fast path (workers/fastpath_messages.py: the versions it relies
--       on, the test that guards it); with KUSTOM_FAST_PATHS=off it is always '';
--       timeline_limit.
local cart, syncing = KEYS[1], KEYS[2]
local version = tonumber(ARGV[1])
local hash, now = ARGV[3], tonumber(ARGV[5])
local cart_id = ARGV[8]

local current = redis.call('HMGET', cart, 'version', 'pending_hash', 'sync_hash',
  'order_id', 'order_unusable', 'sync_queued_at', 'state', 'last_event_at', 'kustom_read_only',
  'sync_lock')
local cur_version, pending, sync = tonumber(current[1]), current[2], current[3]
local order_usable = current[4] and current[5] ~= '1'
local queued_at = tonumber(current[6])
local state = current[7] or 'open'
-- Kustom answered 403 READ_ONLY_ORDER: the shopper has paid, no update can land any more.
-- The cart stays "syncing" (Kustom's order no longer matches it: the completion sees the
-- mismatch), but nothing is queued for it.
local read_only = current[9] and current[9] ~= ''

if cur_version and version < cur_version then
  return {'stale', pending or '', sync or '', state, 0}
end

-- When events arrive: a sync job waits out a burst instead of pushing every intermediate
-- state.
redis.call('HSET', cart, 'version', ARGV[1], 'render', ARGV[2], 'rendered_at', ARGV[5],
  'prev_event_at', current[8] or '0', 'last_event_at', ARGV[5])
local enqueue = 0
local changed = false
if hash ~= pending then
  changed = true
  pending = hash
  redis.call('HSET', cart, 'pending_hash', hash, 'pending_payload', ARGV[4], 'pending_at', ARGV[5])
  if not order_usable then
    -- Nothing at Kustom to update: the order will be created from this render.
    sync = hash
    redis.call('HSET', cart, 'sync_hash', hash, 'sync_payload', ARGV[4])
  end
end
if pending == sync and changed and order_usable and current[10] and current[10] ~= '' then
  -- Back to the payload last recorded at Kustom while a sync job holds the lease: its push
  -- may have landed without being recorded (the job or Redis died before it could say so),
  -- so what Kustom has is not known. The cart stays syncing and a job pushes this payload
  -- (a live holder's finish sees it as newer work; a dead one's lease runs out).
  sync = 'unverified-' .. sync
  redis.call('HSET', cart, 'sync_hash', sync)
end
if pending == sync or read_only then
  redis.call('ZREM', syncing, cart_id)
else
  redis.call('ZADD', syncing, 'NX', now, cart_id)
  -- One queued job per cart is enough: the job pushes whatever is pending when it runs.
  -- An unpayable cart (no payload) has nothing to push; the iframe just stays suspended.
  local payable = redis.call('HSTRLEN', cart, 'pending_payload') > 0
  if payable and (queued_at == nil or now - queued_at > tonumber(ARGV[7])) then
    redis.call('HSET', cart, 'sync_queued_at', ARGV[5])
    if ARGV[9] ~= '' then
      -- The job and the "queued" mark exist together or not at all. The payload it carries
      -- is the pending one (this render's, or an equal one: the hash did not change).
      local message = ARGV[9]
      local at, last = string.find(message, '@@payload@@', 1, true)
      if at then  -- (never raise here: the writes above would stay without their job)
        local escaped = cjson.encode(redis.call('HGET', cart, 'pending_payload'))
        message = string.sub(message, 1, at - 1) .. string.sub(escaped, 2, -2)
          .. string.sub(message, last + 1)
      end
      redis.call('LPUSH', KEYS[4], message)
      enqueue = 2
    else
      enqueue = 1
    end
  end
end
redis.call('EXPIRE', cart, ARGV[6])
redis.call('EXPIRE', syncing, ARGV[6])
if changed then
  -- The timeline keeps the renders that changed the pending payload (a burst of unchanged
  -- ones would push everything else out of it), in this same call: no extra round trip.
  local entry = '{"at":' .. ARGV[5] .. ',"event":"render","version":' .. ARGV[1]
    .. ',"hash":' .. cjson.encode(hash)
  if enqueue ~= 0 then entry = entry .. ',"queued":true' end
  redis.call('RPUSH', KEYS[5], entry .. '}')
  redis.call('LTRIM', KEYS[5], -tonumber(ARGV[10]), -1)
  redis.call('EXPIRE', KEYS[5], ARGV[6])
  redis.call('PUBLISH', KEYS[3], cart_id)
end
return {'accepted', pending, sync or '', state, enqueue}
