/**
 * The Lua that makes each write-behind step atomic in Redis. Versions are Lua numbers (doubles): exact up
 * to 2^53, which microsecond versions stay under; they are formatted with %.0f so no exponent appears.
 *
 * The cache entries are read and written with the helpers of src/cache/codec.ts. The queue writes them
 * with no incarnation: they are valid in every one (the queue's durability is Redis's own, see
 * docs/write-behind.md), where the entries fills write belong to one incarnation of the cache.
 */
import { ENTRY_LUA } from "../cache/codec.js";

const HELPERS = `${ENTRY_LUA}
local function fmt(x) return string.format('%.0f', x) end
local function pendingOf(hash, key)
  local p = redis.call('HGET', hash, key)
  if not p then return nil, nil end
  local ver, op = string.match(p, '^(%d+):(%a):')
  return tonumber(ver), op
end
-- the queue's own entries: kind and version; a fill's entry may be of an old incarnation, so it is
-- good for nothing here but the version floor (cachedFloor)
local function cachedOf(ckey)
  local kind, v, inc = entryHead(ckey)
  if inc ~= '' then return nil, 0 end
  return kind, v
end
local function cachedFloor(ckey)
  local _, v = entryHead(ckey)
  return v
end
`;

/**
 * Enqueues writes, all or nothing.
 * KEYS: stream, pending, clock, then the cache entry of each item.
 * ARGV: max queue, version floor, value freshUntil, value ttl ms, absent freshUntil, absent ttl ms, then
 * six per item: key, op (p|d), value, condition ('' | 'n' for If-None-Match | 'm:<version>' for If-Match),
 * base ('' | 'e:<version>' exists | 'a:<version>' absent: what PostgreSQL held when the caller looked),
 * audit tag ('' | who asked, for the audit log: the stream entry's field a).
 * Returns {'ok', version...} | {'full', depth} | {'base', key} (the caller must look PostgreSQL up) |
 * {'mismatch', key, why}.
 */
export const ENQUEUE_LUA = `${HELPERS}
local n = #KEYS - 3
local depth = redis.call('XLEN', KEYS[1])
if depth + n > tonumber(ARGV[1]) then return {'full', tostring(depth)} end

for i = 1, n do
  local a = 7 + (i - 1) * 6
  local key, cond, base = ARGV[a], ARGV[a + 3], ARGV[a + 4]
  if cond ~= '' then
    local exists, ver
    local pv, pop = pendingOf(KEYS[2], key)
    if pv then
      exists, ver = (pop == 'p'), pv
    else
      local kind, cv = cachedOf(KEYS[3 + i])
      if kind == 'v' or kind == 'a' then
        exists, ver = (kind == 'v'), cv
      elseif base == '' then
        return {'base', key}
      else
        local bop, bver = string.match(base, '^(%a):(%d+)$')
        exists, ver = (bop == 'e'), tonumber(bver)
      end
    end
    if cond == 'n' then
      if exists then return {'mismatch', key, 'exists'} end
    else
      if not exists then return {'mismatch', key, 'absent'} end
      if ver ~= tonumber(string.sub(cond, 3)) then return {'mismatch', key, fmt(ver)} end
    end
  end
end

local clock = tonumber(redis.call('GET', KEYS[3]) or '0')
local floor = tonumber(ARGV[2])
local out = {'ok'}
for i = 1, n do
  local a = 7 + (i - 1) * 6
  local key, op, value, tag = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 5]
  local v = math.max(floor, clock + 1)
  local pv = pendingOf(KEYS[2], key)
  if pv and pv >= v then v = pv + 1 end
  local cv = cachedFloor(KEYS[3 + i])
  if cv >= v then v = cv + 1 end
  clock = v
  local vs = fmt(v)
  local fields = {'k', key, 'n', vs}
  if op == 'p' then fields[#fields + 1] = 'v'; fields[#fields + 1] = value end
  if tag ~= '' then fields[#fields + 1] = 'a'; fields[#fields + 1] = tag end
  redis.call('XADD', KEYS[1], '*', unpack(fields))
  if op == 'p' then
    redis.call('HSET', KEYS[2], key, vs .. ':p:' .. value)
    redis.call('SET', KEYS[3 + i], entryText('v', v, '', ARGV[3], value), 'PX', ARGV[4])
  else
    redis.call('HSET', KEYS[2], key, vs .. ':d:')
    redis.call('SET', KEYS[3 + i], entryText('a', v, '', ARGV[5]), 'PX', ARGV[6])
  end
  out[#out + 1] = vs
end
redis.call('SET', KEYS[3], fmt(clock))
return out
`;

/**
 * ENQUEUE_LUA for one partition's share of a write that spans partitions (journal.ts): the last key is the
 * share's done-marker. Done already: answers the versions it was queued with, and queues nothing again.
 * Otherwise the same as ENQUEUE_LUA, then the marker keeps the versions for an hour.
 */
export const ENQUEUE_SHARE_LUA = `
local done = redis.call('GET', KEYS[#KEYS])
if done then
  local out = {'ok'}
  for v in string.gmatch(done, '%d+') do out[#out + 1] = v end
  return out
end
local marker = table.remove(KEYS)
local reply = (function()
${ENQUEUE_LUA}
end)()
if reply[1] == 'ok' then
  redis.call('SET', marker, table.concat(reply, ' ', 2), 'PX', 3600000)
end
return reply
`;

/**
 * PostgreSQL holds these writes: ack and delete their entries, forget their attempt counts, and drop each
 * key's pending write when it is still the one that was flushed (a newer one stays).
 * KEYS: stream, pending, attempts. ARGV: group, id count, ids..., then key/version pairs.
 */
export const SETTLE_LUA = `
local nids = tonumber(ARGV[2])
for i = 3, 2 + nids do
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  redis.call('XDEL', KEYS[1], ARGV[i])
  redis.call('HDEL', KEYS[3], ARGV[i])
end
for i = 3 + nids, #ARGV, 2 do
  local p = redis.call('HGET', KEYS[2], ARGV[i])
  if p and string.match(p, '^(%d+):') == ARGV[i + 1] then redis.call('HDEL', KEYS[2], ARGV[i]) end
end
return nids
`;

/**
 * Moves one write PostgreSQL refused for good to the dead letters. When its write is still the key's newest,
 * the pending write is dropped and the cache entry replaced by a tombstone one above it, so reads stop
 * showing a value PostgreSQL will never hold and no fill of it can land. Does nothing when the entry was
 * already settled elsewhere.
 * KEYS: stream, pending, attempts, dead, cache entry.
 * ARGV: group, id, key, version, op, value, reason, attempts, tombstone ttl ms, time ms.
 */
export const DEAD_LETTER_LUA = `${HELPERS}
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XADD', KEYS[4], '*', 'id', ARGV[2], 'k', ARGV[3], 'n', ARGV[4], 'op', ARGV[5], 'v', ARGV[6],
  'reason', ARGV[7], 'attempts', ARGV[8], 'at', ARGV[10])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
local p = redis.call('HGET', KEYS[2], ARGV[3])
if p and string.match(p, '^(%d+):') == ARGV[4] then redis.call('HDEL', KEYS[2], ARGV[3]) end
local kind, cv = entryHead(KEYS[5])
if kind and kind ~= 't' and fmt(cv) == ARGV[4] then
  redis.call('SET', KEYS[5], entryText('t', cv + 1, '', 0), 'PX', ARGV[9])
end
return 1
`;

/** Depth, the oldest entry, the server's time and the dead letters, in one round trip. KEYS: stream, dead. */
export const STATUS_LUA = `
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local t = redis.call('TIME')
return {redis.call('XLEN', KEYS[1]), first[1] and first[1][1] or '', t[1], t[2], redis.call('XLEN', KEYS[2])}
`;

/** KEYS: the claimer lease. ARGV: the consumer, the lease in ms. 1 when it held the lease and renewed it. */
export const RENEW_LEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;

/** KEYS: the claimer lease. ARGV: the consumer. Deletes the lease if it is still this consumer's. */
export const RELEASE_LEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;
