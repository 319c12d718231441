-- Record the outcome of a queued operation, once: the first outcome stays.
-- KEYS[1] operation hash, KEYS[2] pending index, KEYS[3] undelivered-results index
-- ARGV: status, id_field, kustom_id, error_json, now_ms, member, deliver ('1' | '0'), ttl_s
local record = KEYS[1]
local status = redis.call('HGET', record, 'status')
if not status then return {'gone'} end
if status ~= 'queued' then return {'already', status} end
redis.call('HSET', record, 'status', ARGV[1], 'finished_at', ARGV[5])
if ARGV[3] ~= '' then redis.call('HSET', record, ARGV[2], ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', record, 'error', ARGV[4]) end
redis.call('HDEL', record, 'lease_token', 'lease_until')
redis.call('ZREM', KEYS[2], ARGV[6])
if ARGV[7] == '1' then
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[6])
  redis.call('EXPIRE', KEYS[3], ARGV[8])
else
  redis.call('HSET', record, 'result_delivered', '1')
end
return {'finished', ARGV[1]}
