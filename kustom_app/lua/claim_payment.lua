-- Record a payment operation (capture, refund, cancel) the first time its id is seen.
-- A repeated event finds the record and changes nothing, so it can never reach Kustom twice.
-- A failed operation may be queued again only when the caller allows it (a new cancel event).
-- KEYS[1] operation hash, KEYS[2] pending index (zset: member -> queued at),
-- KEYS[3] the cart's set of operations
-- ARGV: fingerprint, now_ms, ttl_s, member, requeue_failed ('1' | '0'), then field, value, ...
local record = KEYS[1]
local s = redis.call('HMGET', record, 'status', 'fingerprint')
if s[1] then
  if ARGV[5] == '1' and s[1] == 'failed' and s[2] == ARGV[1] then
    redis.call('HINCRBY', record, 'attempt', 1)
    redis.call('HSET', record, 'status', 'queued', 'queued_at', ARGV[2], 'result_delivered', '0')
    redis.call('HDEL', record, 'error', 'finished_at', 'lease_token', 'lease_until')
    redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
    redis.call('EXPIRE', record, ARGV[3])
    return {'requeued', 'queued', s[2]}
  end
  return {'exists', s[1], s[2] or ''}
end
redis.call('HSET', record, 'status', 'queued', 'fingerprint', ARGV[1], 'queued_at', ARGV[2],
  'attempt', '1', 'result_delivered', '0')
for i = 6, #ARGV, 2 do
  redis.call('HSET', record, ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', record, ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return {'created', 'queued', ARGV[1]}
