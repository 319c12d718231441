-- The result of an operation reached the commerce backend (or was refused by it for good):
-- stop resending it.
-- KEYS[1] operation hash, KEYS[2] undelivered-results index
-- ARGV: member, now_ms, outcome ('delivered' | 'refused'), detail_json
local record = KEYS[1]
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('EXISTS', record) == 0 then return 'gone' end
if ARGV[3] == 'delivered' then
  redis.call('HSET', record, 'result_delivered', '1', 'delivered_at', ARGV[2])
  redis.call('HDEL', record, 'delivery_error')
else
  redis.call('HSET', record, 'delivery_error', ARGV[4])
end
return ARGV[3]
