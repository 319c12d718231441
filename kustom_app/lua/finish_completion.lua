-- The commerce backend has the order: record completed (once) and queue the acknowledgement.
-- Safe for a stalled claim holder to call too: the commerce call was idempotent on the
-- Kustom order id, so every caller carries the same order number.
-- KEYS[1] cart hash, KEYS[2] claims index, KEYS[3] unacknowledged index,
-- KEYS[4] events channel, KEYS[5] long-lived order record, KEYS[6] mismatches index
-- ARGV: order_id, order_number, now_ms, path, cart_id, ttl_s, record_json, record_ttl_s,
--       fraud_status
local cart = KEYS[1]
local s = redis.call('HMGET', cart, 'state', 'order_number', 'completion_order_id', 'mismatch')
if s[1] == 'completed' then return {'already', s[2] or '', s[3] or ''} end
redis.call('HSET', cart, 'state', 'completed', 'order_number', ARGV[2],
  'completion_order_id', ARGV[1], 'completed_at', ARGV[3], 'completed_by', ARGV[4],
  'fraud_status', ARGV[9])
redis.call('HDEL', cart, 'completion_token', 'completion_lease_until', 'completion_error')
-- A mismatch recorded for this very order is settled now (an operator fixed the order and
-- retried, or Kustom's order caught up); one of another order stays for the operator.
if s[4] then
  local ok, entry = pcall(cjson.decode, s[4])
  if ok and type(entry) == 'table' and entry['kustomOrderId'] == ARGV[1] then
    redis.call('HDEL', cart, 'mismatch')
    redis.call('ZREM', KEYS[6], ARGV[5])
  end
end
redis.call('ZREM', KEYS[2], ARGV[5])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[5])
redis.call('EXPIRE', cart, ARGV[6])
redis.call('EXPIRE', KEYS[3], ARGV[8])
redis.call('SET', KEYS[5], ARGV[7], 'EX', ARGV[8])
redis.call('PUBLISH', KEYS[4], ARGV[5])
return {'completed', ARGV[2], ARGV[1]}
