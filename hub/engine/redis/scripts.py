"""The Lua scripts of the Redis engine: each runs atomically on the Redis server.

Atomicity is what makes several nodes agree: an offset is assigned, stored and
published in one step (so pub/sub order is offset order on every node), and a
presence change reads and updates the per-user count in one step (so exactly one
node sees a user's first connection, and one its last). An expired entry is
removed, and its leave queued, by whichever script sweeps it first: once.

Time is the Redis server's (``TIME``), so nodes with skewed clocks still agree
on what has expired. Scripts are effect-replicated (Redis >= 5; ``XTRIM MINID``
needs Redis >= 6.2).
"""

from __future__ import annotations

_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Make a key live at least ms more milliseconds; never shortens its life.
local function extend(key, ms)
  if ms > 0 and redis.call('PTTL', key) < ms then
    redis.call('PEXPIRE', key, ms)
  end
end
"""

_HISTORY = (
    _COMMON
    + """
-- The stream's epoch; a missing stream gets the candidate epoch and offset 0,
-- and any entries left from before are forgotten with it.
local function ensure_meta(meta, stream, candidate)
  local epoch = redis.call('HGET', meta, 'epoch')
  if epoch then
    return epoch
  end
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'epoch', candidate, 'top', 0)
  return candidate
end

local function offset_of(id)
  return tonumber(string.match(id, '^(%d+)'))
end

-- Drop the leading run of expired entries (field 'x' is the deadline in ms),
-- exactly as the memory engine pops expired entries from the front.
local function expire_front(stream, now)
  -- Nearly always the oldest entry is live: look at it alone first (a page
  -- of 64 entries turned into Lua tables cost most of a publish's script).
  local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
  if #oldest == 1 and tonumber(oldest[1][2][4]) > now then
    return
  end
  while true do
    local batch = redis.call('XRANGE', stream, '-', '+', 'COUNT', 64)
    if #batch == 0 then
      redis.call('DEL', stream)
      return
    end
    for i = 1, #batch do
      if tonumber(batch[i][2][4]) > now then
        if i > 1 then
          redis.call('XTRIM', stream, 'MINID', batch[i][1])
        end
        return
      end
    end
    redis.call('XTRIM', stream, 'MINID', (offset_of(batch[#batch][1]) + 1) .. '-0')
  end
end
"""
)

HISTORY_ADD = (
    _HISTORY
    + """
-- KEYS: meta, stream. ARGV: epoch candidate, body, size, ttl ms, meta ttl ms,
-- pub/sub channel ('' publishes nothing).
local meta, stream = KEYS[1], KEYS[2]
local size, ttl, meta_ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local epoch = ensure_meta(meta, stream, ARGV[1])
local top = redis.call('HINCRBY', meta, 'top', 1)
local now = now_ms()
if size > 0 then
  redis.call('XADD', stream, 'MAXLEN', size, top .. '-0', 'd', ARGV[2], 'x', now + ttl)
  extend(stream, ttl)
end
expire_front(stream, now)
extend(meta, math.max(meta_ttl, ttl))
if ARGV[6] ~= '' then
  redis.call('PUBLISH', ARGV[6], top .. ':' .. epoch .. ':' .. ARGV[2])
end
return {top, epoch}
"""
)

HISTORY_READ = (
    _HISTORY
    + """
-- At most count entries (< 0: no limit) from start on (reverse: from start
-- back), read a page at a time; with a budget (>= 0) reading stops after the
-- first entry whose body takes the total past it. {entries, stopped for the
-- budget (1/0)}. Ids are '<offset>-0', so the next page starts one offset on.
local function read_bounded(stream, reverse, start, count, budget)
  local out, total, cursor = {}, 0, start
  while true do
    local want = 64
    if count >= 0 then
      want = math.min(want, count - #out)
    end
    if want <= 0 then
      return out, 0
    end
    local page
    if reverse then
      page = redis.call('XREVRANGE', stream, cursor, '-', 'COUNT', want)
    else
      page = redis.call('XRANGE', stream, cursor, '+', 'COUNT', want)
    end
    for i = 1, #page do
      out[#out + 1] = page[i]
      if budget >= 0 then
        total = total + string.len(page[i][2][2])
        if total > budget then
          return out, 1
        end
      end
    end
    if #page < want then
      return out, 0
    end
    local last = offset_of(page[#page][1])
    if reverse then
      if last <= 1 then
        return out, 0
      end
      cursor = (last - 1) .. '-0'
    else
      cursor = (last + 1) .. '-0'
    end
  end
end

-- KEYS: meta, stream. ARGV: epoch candidate, meta ttl ms, mode, start id, count,
-- byte budget (< 0: none). mode 'position': {epoch, top}. mode 'latest': the
-- last count entries, newest first (count < 0: all). mode 'since': entries
-- from the start id, at most count (< 0: all). Both read modes return {epoch,
-- top, first kept offset (top + 1 when none), entries, stopped for the budget}.
local meta, stream = KEYS[1], KEYS[2]
local epoch = ensure_meta(meta, stream, ARGV[1])
extend(meta, tonumber(ARGV[2]))
local top = tonumber(redis.call('HGET', meta, 'top'))
local mode, count, budget = ARGV[3], tonumber(ARGV[5]), tonumber(ARGV[6] or '-1')
if mode == 'position' then
  return {epoch, top}
end
expire_front(stream, now_ms())
local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
local first_kept = top + 1
if #first > 0 then
  first_kept = offset_of(first[1][1])
end
local entries, stopped
if mode == 'latest' then
  entries, stopped = read_bounded(stream, true, '+', count, budget)
else
  entries, stopped = read_bounded(stream, false, ARGV[4], count, budget)
end
return {epoch, top, first_kept, entries, stopped}
"""
)

_PRESENCE = (
    _COMMON
    + """
-- KEYS: members (client -> blob), expiry (client scored by deadline), users
-- (user -> connection count) of one channel; departed (leaves waiting to be
-- announced, shared by all channels); nodes (node -> deadline of its newest
-- entry); node channels (the calling node's channels with entries).
-- ARGV[1]: channel, ARGV[2]: ttl ms, ARGV[3]: calling node; the script's own
-- arguments follow. A blob starts '<length of user>:<user>'.
local members, expiry, users = KEYS[1], KEYS[2], KEYS[3]
local departed, nodes, node_channels = KEYS[4], KEYS[5], KEYS[6]
local channel, ttl, node = ARGV[1], tonumber(ARGV[2]), ARGV[3]
-- Keys outlive their entries by one more TTL: a live node sweeping a dead
-- node's channels still finds (and announces) its expired entries.
local grace = 2 * ttl

local function user_of(blob)
  local colon = string.find(blob, ':', 1, true)
  local length = tonumber(string.sub(blob, 1, colon - 1))
  return string.sub(blob, colon + 1, colon + length)
end

-- Remove a connection; its blob and whether it was its user's last, or nil.
local function drop(client)
  redis.call('ZREM', expiry, client)
  local blob = redis.call('HGET', members, client)
  if not blob then
    return nil, false
  end
  redis.call('HDEL', members, client)
  local user = user_of(blob)
  local left = redis.call('HINCRBY', users, user, -1)
  if left <= 0 then
    redis.call('HDEL', users, user)
  end
  return blob, left <= 0
end

-- Connections whose node stopped refreshing them (it died) are forgotten; a
-- user's last one is queued for a live node to announce its leave. Only the
-- script that removes an entry queues it, so each leave is queued once.
local function sweep(now)
  local dead = redis.call('ZRANGEBYSCORE', expiry, '-inf', now)
  for i = 1, #dead do
    local client = dead[i]
    local blob, last = drop(client)
    if last then
      redis.call('RPUSH', departed, #channel .. ':' .. channel .. #client .. ':' .. client .. blob)
      extend(departed, grace)
    end
  end
end

-- Add or update a connection; true when it is its user's first.
local function put(client, blob, deadline)
  local fresh = redis.call('HSET', members, client, blob) == 1
  redis.call('ZADD', expiry, deadline, client)
  if fresh then
    return redis.call('HINCRBY', users, user_of(blob), 1) == 1
  end
  return false
end

local function keep()
  extend(members, grace)
  extend(expiry, grace)
  extend(users, grace)
end

-- The calling node has entries here until now + ttl: once that passes
-- without a refresh, any live node may sweep the channel for it.
local function own(now)
  redis.call('ZADD', nodes, now + ttl, node)
  extend(nodes, grace)
  redis.call('SADD', node_channels, channel)
  extend(node_channels, grace)
end
"""
)

PRESENCE_ADD = (
    _PRESENCE
    + """
-- ARGV[4]: client, ARGV[5]: blob. Returns 1 for the user's first connection.
local now = now_ms()
sweep(now)
local first = put(ARGV[4], ARGV[5], now + ttl)
keep()
own(now)
if first then
  return 1
end
return 0
"""
)

PRESENCE_REMOVE = (
    _PRESENCE
    + """
-- ARGV[4]: client, ARGV[5]: '1' when the node has no other entry in the channel.
-- Returns {blob, 1 if it was the user's last else 0}, or nil.
sweep(now_ms())
if ARGV[5] == '1' then
  redis.call('SREM', node_channels, channel)
end
local blob, last = drop(ARGV[4])
if not blob then
  return nil
end
if last then
  return {blob, 1}
end
return {blob, 0}
"""
)

PRESENCE_MEMBERS = (
    _PRESENCE
    + """
-- Returns the live connections as HGETALL does.
sweep(now_ms())
return redis.call('HGETALL', members)
"""
)

PRESENCE_SWEEP = (
    _PRESENCE
    + """
-- Forget (and queue the leaves of) the channel's expired connections.
sweep(now_ms())
return 0
"""
)

PRESENCE_REFRESH = (
    _PRESENCE
    + """
-- ARGV[4..]: client ids. Pushes back the deadline of those still here;
-- returns the ones missing (expired, or lost with Redis's data).
local now = now_ms()
sweep(now)
local missing = {}
for i = 4, #ARGV do
  if redis.call('HEXISTS', members, ARGV[i]) == 1 then
    redis.call('ZADD', expiry, now + ttl, ARGV[i])
  else
    missing[#missing + 1] = ARGV[i]
  end
end
keep()
own(now)
return missing
"""
)

PRESENCE_RESTORE = (
    _PRESENCE
    + """
-- ARGV[4..]: client, blob pairs: put back connections a node still has.
local now = now_ms()
sweep(now)
for i = 4, #ARGV, 2 do
  put(ARGV[i], ARGV[i + 1], now + ttl)
end
keep()
own(now)
return 0
"""
)

PRESENCE_LAPSED_NODES = (
    _COMMON
    + """
-- KEYS: nodes. Nodes whose entries have all expired: they stopped refreshing.
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms())
"""
)

PRESENCE_FORGET_NODE = (
    _COMMON
    + """
-- KEYS: nodes, the node's channels, its reaper lock. ARGV: node, reaper token.
-- After its channels were swept: forget the node unless it refreshed meanwhile
-- (it was only cut off), then release the lock if still ours.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) <= now_ms() then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[2])
end
if redis.call('GET', KEYS[3]) == ARGV[2] then
  redis.call('DEL', KEYS[3])
end
return 0
"""
)

_RETAINED = """
-- KEYS: publications hash, name index (sorted set), bytes (the hash's values'
-- total length), deadlines (sorted set: channel by the time, in ms, it expires).
-- A missing total (a store from before it was kept) is counted once.
local function stored_bytes(hash, total)
  local bytes = redis.call('GET', total)
  if bytes then
    return tonumber(bytes)
  end
  local sum = 0
  for _, name in ipairs(redis.call('HKEYS', hash)) do
    sum = sum + redis.call('HSTRLEN', hash, name)
  end
  redis.call('SET', total, sum)
  return sum
end

local function forget(name)
  local held = redis.call('HSTRLEN', KEYS[1], name)
  redis.call('HDEL', KEYS[1], name)
  redis.call('ZREM', KEYS[2], name)
  redis.call('ZREM', KEYS[4], name)
  if held > 0 then
    redis.call('DECRBY', KEYS[3], held)
  end
end
"""

# Expired retained messages deleted per sweep, at most (a sweep runs in the
# script that found the store full, so it stays short).
RETAINED_SWEEP = 1000

RETAINED_SET = (
    _RETAINED
    + """
-- ARGV: channel, body, max channels, max bytes, now (ms), deadline (ms; 0: none).
-- 0 (nothing stored) when the store would pass either bound, even once the
-- expired messages are swept.
local function fits()
  local held = redis.call('HSTRLEN', KEYS[1], ARGV[1])
  local new = redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0
  if new and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
    return false
  end
  local grow = string.len(ARGV[2]) - held
  return stored_bytes(KEYS[1], KEYS[3]) + grow <= tonumber(ARGV[4])
end
if not fits() then
  local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[5], 'LIMIT', 0, """
    + str(RETAINED_SWEEP)
    + """)
  if #expired == 0 then
    return 0
  end
  for _, name in ipairs(expired) do
    forget(name)
  end
  if not fits() then
    return 0
  end
end
local held = redis.call('HSTRLEN', KEYS[1], ARGV[1])
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  redis.call('ZADD', KEYS[2], 0, ARGV[1])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local grow = string.len(ARGV[2]) - held
if grow ~= 0 then
  redis.call('INCRBY', KEYS[3], grow)
end
if ARGV[6] ~= '0' then
  redis.call('ZADD', KEYS[4], ARGV[6], ARGV[1])
else
  redis.call('ZREM', KEYS[4], ARGV[1])
end
return 1
"""
)

RETAINED_DELETE = (
    _RETAINED
    + """
-- ARGV: channel.
stored_bytes(KEYS[1], KEYS[3])
forget(ARGV[1])
return 1
"""
)

RETAINED_READ = """
-- KEYS: publications hash, deadlines. ARGV: now (ms), channels. The bodies of
-- the channels, nil for one missing or expired (left for a sweep to delete).
local out = {}
for i = 2, #ARGV do
  local deadline = redis.call('ZSCORE', KEYS[2], ARGV[i])
  if deadline and tonumber(deadline) <= tonumber(ARGV[1]) then
    out[i - 1] = false
  else
    out[i - 1] = redis.call('HGET', KEYS[1], ARGV[i])
  end
end
return out
"""
