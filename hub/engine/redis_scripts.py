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

# Map channels (Centrifugo's map subscriptions). A channel's entries are a hash (key -> "offset:body"), its keys
# a sorted set in key order (score 0: pages by ZRANGEBYLEX), its per-key deadlines a sorted set (key -> expires
# at, ms). With a stream the change takes the next stream offset
# (as PUBLISH does) and its message is '__p1:offset:epoch__'; without, it takes the next value of the meta
# hash's 'm' (a sequence the nodes use to line a snapshot up with what they deliver; 'me' its epoch) and its
# message is '__m0:seq:epoch__'. When asked, the key's previous entry rides along as 'B<len>:<body>' before the body (the base
# of a per-key delta).
# KEYS: meta, stream, pubsub channel, entries hash, deadlines zset, keys zset. ARGV: history size (0: none), lifetime ms,
# meta ttl s, a new epoch, key, packed publication, removed (1/0), mode ('', 'if_new': not if the key is there,
# 'expired': a removal only if the key's deadline is at or before ARGV[10]), key ttl ms (0: none), now ms,
# send the base (1/0).
# Returns {offset or seq, epoch, receivers, expires at ms (0: none)}, or {-1} when nothing was done.
MAP_UPDATE = """
local key = ARGV[5]
local prev = redis.call('hget', KEYS[4], key)
local removed = ARGV[7] == '1'
local mode = ARGV[8]
if removed and not prev then return {-1} end
if mode == 'if_new' and prev and not removed then return {-1} end
if mode == 'expired' then
  local at = redis.call('zscore', KEYS[5], key)
  if not at or tonumber(at) > tonumber(ARGV[10]) then return {-1} end
end
local size = tonumber(ARGV[1])
local meta_ttl = tonumber(ARGV[3])
local body = ARGV[6]
local off, epoch, head
if size > 0 then
  epoch = redis.call('hget', KEYS[1], 'e')
  if not epoch then
    epoch = ARGV[4]
    redis.call('del', KEYS[2])
    redis.call('hset', KEYS[1], 'e', epoch, 's', 0)
  end
  off = redis.call('hincrby', KEYS[1], 's', 1)
  redis.call('xadd', KEYS[2], 'MAXLEN', size, off .. '-0', 'd', body)
  redis.call('pexpire', KEYS[2], ARGV[2])
  if meta_ttl > 0 then redis.call('expire', KEYS[1], meta_ttl) else redis.call('pexpire', KEYS[1], ARGV[2]) end
  head = '__p1:' .. off .. ':' .. epoch .. '__'
else
  local seq_epoch = redis.call('hget', KEYS[1], 'me')
  if not seq_epoch then
    seq_epoch = ARGV[4]
    redis.call('hset', KEYS[1], 'me', seq_epoch, 'm', 0)
  end
  epoch = ''
  off = redis.call('hincrby', KEYS[1], 'm', 1)
  head = '__m0:' .. off .. ':' .. seq_epoch .. '__'
end
local expires = 0
if removed then
  redis.call('hdel', KEYS[4], key)
  redis.call('zrem', KEYS[5], key)
  redis.call('zrem', KEYS[6], key)
else
  local stored = off
  if size == 0 then stored = 0 end
  redis.call('hset', KEYS[4], key, stored .. ':' .. body)
  if not prev then redis.call('zadd', KEYS[6], 0, key) end
  local ttl = tonumber(ARGV[9])
  if ttl > 0 then
    expires = tonumber(ARGV[10]) + ttl
    redis.call('zadd', KEYS[5], expires, key)
  end
end
if prev and not removed and ARGV[11] == '1' then
  local base = string.sub(prev, string.find(prev, ':', 1, true) + 1)
  head = head .. 'B' .. #base .. ':' .. base
end
local receivers = redis.call('publish', KEYS[3], head .. body)
return {off, epoch, receivers, expires}
"""

# KEYS: meta, entries hash, keys zset. ARGV: with a stream (1/0), a new epoch, lifetime ms, meta ttl s, cursor
# (the entries after this key; '': from the first), count (-1: all).
# Returns {top offset (or sequence), epoch (or the sequence's, '' if none yet), {key, entry, key, entry, ...} in key
# order}: one atomic read, so the entries are exactly those as of that position. A stream is started if there is none.
MAP_READ = """
local top, epoch = 0, ''
if ARGV[1] ~= '1' then
  local seq = redis.call('hmget', KEYS[1], 'm', 'me')
  top, epoch = tonumber(seq[1] or '0'), seq[2] or ''
else
  epoch = redis.call('hget', KEYS[1], 'e')
  if not epoch then
    epoch = ARGV[2]
    redis.call('hset', KEYS[1], 'e', epoch, 's', 0)
    local meta_ttl = tonumber(ARGV[4])
    if meta_ttl > 0 then redis.call('expire', KEYS[1], meta_ttl) else redis.call('pexpire', KEYS[1], ARGV[3]) end
  else
    top = tonumber(redis.call('hget', KEYS[1], 's') or '0')
  end
end
local low = '-'
if ARGV[5] ~= '' then low = '(' .. ARGV[5] end
local keys
if tonumber(ARGV[6]) < 0 then keys = redis.call('zrangebylex', KEYS[3], low, '+')
else keys = redis.call('zrangebylex', KEYS[3], low, '+', 'LIMIT', 0, ARGV[6]) end
local out = {}
for i = 1, #keys, 1000 do
  local chunk = {unpack(keys, i, math.min(i + 999, #keys))}
  local values = redis.call('hmget', KEYS[2], unpack(chunk))
  for j = 1, #chunk do
    out[#out + 1] = chunk[j]
    out[#out + 1] = values[j]
  end
end
return {top, epoch, out}
"""

# KEYS: the deadlines registry (member -> the deadline last set for one key of one map channel). ARGV: member,
# now ms. Forgets the member if its deadline has passed (a key set again since has a later one: kept).
MAP_DONE = """
local at = redis.call('zscore', KEYS[1], ARGV[1])
if at and tonumber(at) <= tonumber(ARGV[2]) then redis.call('zrem', KEYS[1], ARGV[1]) end
return 0
"""

# KEYS: meta, stream, entries hash, deadlines zset, keys zset, pubsub channel. ARGV: a new epoch ('': the map has no
# stream), lifetime ms, meta ttl s. Centrifugo's map Clear: the state and the stream go in one step, with the stream's
# offsets; the next stream's epoch is started here (Centrifugo starts it at the next read or change: the same to any
# reader) and announced as '__c:epoch__' on the channel, so each node following it learns the new epoch in order with
# the changes (a subscriber that followed the old one is told insufficient state by the next change, as Centrifugo's
# epoch check does; a new one starts from the new epoch). Clients get nothing from the clear itself. A map without a
# stream keeps its change sequence ('m', 'me': how the nodes line snapshots up, not a position a client holds) and
# announces nothing. Keys left in the deadlines registry find no deadline when their time comes and are dropped.
MAP_CLEAR = """
redis.call('del', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
if ARGV[1] == '' then return 0 end
redis.call('hset', KEYS[1], 'e', ARGV[1], 's', 0)
local meta_ttl = tonumber(ARGV[3])
if meta_ttl > 0 then redis.call('expire', KEYS[1], meta_ttl) else redis.call('pexpire', KEYS[1], ARGV[2]) end
redis.call('publish', KEYS[6], '__c:' .. ARGV[1] .. '__')
return 0
"""

SCRIPTS = {"publish": PUBLISH, "read": READ, "presence": PRESENCE, "map_update": MAP_UPDATE, "map_read": MAP_READ,
           "map_done": MAP_DONE, "map_clear": MAP_CLEAR}
