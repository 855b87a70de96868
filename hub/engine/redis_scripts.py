"""Lua run inside Redis: offsets and epoch assigned with the stored stream and the PUB/SUB message in
one atomic step. Keys of one channel share the hash tag `{project:channel}` (Cluster-safe)."""

# KEYS: meta, stream, pubsub channel. ARGV: history size (0: none), lifetime ms, meta ttl s, a new
# epoch (used if the channel has none), then one packed publication per item.
# Returns {first offset, epoch, receivers of the last PUBLISH}.
PUBLISH = """
local size = tonumber(ARGV[1])
local n = #ARGV - 4
local receivers = 0
if size > 0 then
  local epoch = redis.call('hget', KEYS[1], 'e')
  if not epoch then
    epoch = ARGV[4]
    redis.call('del', KEYS[2])
    redis.call('hset', KEYS[1], 'e', epoch, 's', 0)
  end
  local top = redis.call('hincrby', KEYS[1], 's', n)
  local first = top - n + 1
  local head = ':' .. epoch .. '__'
  for i = 1, n do
    local off = first + i - 1
    redis.call('xadd', KEYS[2], 'MAXLEN', size, off .. '-0', 'd', ARGV[4 + i])
    receivers = redis.call('publish', KEYS[3], '__p1:' .. off .. head .. ARGV[4 + i])
  end
  redis.call('pexpire', KEYS[2], ARGV[2])
  local meta_ttl = tonumber(ARGV[3])
  if meta_ttl > 0 then redis.call('expire', KEYS[1], meta_ttl) else redis.call('pexpire', KEYS[1], ARGV[2]) end
  return {first, epoch, receivers}
end
for i = 1, n do
  receivers = redis.call('publish', KEYS[3], '__p0__' .. ARGV[4 + i])
end
return {0, '', receivers}
"""

# KEYS: meta, stream. ARGV: since (exclusive offset, -1: from the start), limit (-1: all, 0: none),
# newest first (1/0), create (1/0), a new epoch, lifetime ms, meta ttl s.
# Returns {top offset, epoch, entries}; {0, '', {}} when there is no stream and create is 0.
READ = """
local epoch = redis.call('hget', KEYS[1], 'e')
local top = 0
if not epoch then
  if ARGV[4] ~= '1' then return {0, '', {}} end
  epoch = ARGV[5]
  redis.call('del', KEYS[2])
  redis.call('hset', KEYS[1], 'e', epoch, 's', 0)
  local meta_ttl = tonumber(ARGV[7])
  if meta_ttl > 0 then redis.call('expire', KEYS[1], meta_ttl) else redis.call('pexpire', KEYS[1], ARGV[6]) end
else
  top = tonumber(redis.call('hget', KEYS[1], 's') or '0')
end
local limit = tonumber(ARGV[2])
local entries = {}
if limit ~= 0 then
  local since = tonumber(ARGV[1])
  local low = '-'
  if since >= 0 then low = '(' .. since .. '-0' end
  if ARGV[3] == '1' then
    if limit > 0 then entries = redis.call('xrevrange', KEYS[2], '+', low, 'COUNT', limit)
    else entries = redis.call('xrevrange', KEYS[2], '+', low) end
  else
    if limit > 0 then entries = redis.call('xrange', KEYS[2], low, '+', 'COUNT', limit)
    else entries = redis.call('xrange', KEYS[2], low, '+') end
  end
end
return {top, epoch, entries}
"""

# KEYS: presence zset (client -> expires at), presence hash (client -> record). ARGV: now.
# Drops expired entries; returns the hash as a flat array.
PRESENCE = """
local expired = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1])
if #expired > 0 then
  redis.call('zremrangebyscore', KEYS[1], '-inf', ARGV[1])
  for i = 1, #expired, 1000 do
    redis.call('hdel', KEYS[2], unpack(expired, i, math.min(i + 999, #expired)))
  end
end
return redis.call('hgetall', KEYS[2])
"""

SCRIPTS = {"publish": PUBLISH, "read": READ, "presence": PRESENCE}
