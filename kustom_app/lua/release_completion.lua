-- Give a completion claim back (the commerce backend refused or is down), keeping the
-- reason for operators. Only the holder of the token can release.
-- KEYS[1] cart hash, KEYS[2] claims index, KEYS[3] events channel
-- ARGV: token, error_json, cart_id
local cart = KEYS[1]
local s = redis.call('HMGET', cart, 'state', 'completion_token')
if s[1] ~= 'completing' or s[2] ~= ARGV[1] then return 'not_held' end
redis.call('HSET', cart, 'state', 'open')
redis.call('HDEL', cart, 'completion_token', 'completion_lease_until')
if ARGV[2] ~= '' then redis.call('HSET', cart, 'completion_error', ARGV[2]) end
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('PUBLISH', KEYS[3], ARGV[3])
return 'released'
