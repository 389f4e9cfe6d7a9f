/**
 * The Lua scripts that make the Redis backend's multi-key steps atomic. Items are JSON strings;
 * cjson reads the event id out of them. KEYS/ARGV orders match the calls in index.ts.
 */

/**
 * A token's row and the JSON of the room it is in, in one step. KEYS: token   ARGV: room key prefix.
 * The room key comes from the row, so this needs one Redis (not a Cluster), as the rest does.
 */
const ROW_AND_ROOM = `
local function rowAndRoom(tokenKey, roomPrefix)
  local row = redis.call('HGETALL', tokenKey)
  if #row == 0 then return false, false end
  local room = false
  for i = 1, #row, 2 do
    if row[i] == 'r' and row[i + 1] ~= '' then room = redis.call('GET', roomPrefix .. row[i + 1]) end
  end
  return row, room
end
`;

/** The head of an inbox, marked in flight: the in-flight item again while there is one. */
const LEASE_FN = `
local function lease(list, inflight, ttlMs)
  local f = redis.call('GET', inflight)
  if f then return f end
  f = redis.call('LPOP', list)
  if f then redis.call('SET', inflight, f, 'PX', ttlMs) end
  return f
end
`;

/** An owner's count (the in-flight item included) and bytes, and the bytes queued in all. */
const QUEUED_FN = `
local function queued(list, inflight, bytesKey, totalKey, owner)
  return {
    redis.call('LLEN', list) + redis.call('EXISTS', inflight),
    tonumber(redis.call('HGET', bytesKey, owner) or '0'),
    tonumber(redis.call('GET', totalKey) or '0')
  }
end
`;

export const TOKEN_AND_ROOM = `${ROW_AND_ROOM}
local row, room = rowAndRoom(KEYS[1], ARGV[1])
if not row then return false end
return {row, room}
`;

/**
 * What a send reads first: the token's row and room, and the size of the other member's inbox
 * (as SIZE gives it). KEYS: token, bytesKey, totalKey   ARGV: room, inbox and in-flight key
 * prefixes, the sender's hash. Replies {row, room, partner, count, bytes, total}; row false: no
 * such token; partner false: nobody else in the room.
 */
export const FOR_SEND = `${ROW_AND_ROOM}${QUEUED_FN}
local row, room = rowAndRoom(KEYS[1], ARGV[1])
if not room then return {row, false, false, 0, 0, 0} end
local partner = false
for _, m in ipairs(cjson.decode(room).members) do
  if m.hash ~= ARGV[4] then partner = m.hash end
end
if not partner then return {row, room, false, 0, 0, 0} end
local q = queued(ARGV[2] .. partner, ARGV[3] .. partner, KEYS[2], KEYS[3], partner)
return {row, room, partner, q[1], q[2], q[3]}
`;

/** Drops the in-flight `item` of `owner` for good (acknowledged or delivered), with its counts. */
const DONE_FN = `
local function done(inflight, bytesKey, totalKey, expiryKey, owner, item)
  redis.call('DEL', inflight)
  redis.call('HINCRBY', bytesKey, owner, -item.bytes)
  redis.call('DECRBY', totalKey, item.bytes)
  redis.call('ZREM', expiryKey, owner .. '|' .. item.event.id)
end
`;

/**
 * What a wait reads first: the inbox's head, leased as LEASE does, or else the token's row and
 * room. With an id to acknowledge (ARGV[4] not ''), a head with that id is done first (its
 * sender's receipt set to acknowledged, for ARGV[6] ms) and the next one leased.
 * KEYS: list, inflight, token, bytesKey, totalKey, expiryKey   ARGV: lease ttlMs, room key prefix,
 * owner, ack id, fate key prefix, fate ttlMs. Replies {head} or {false, row, room} (row false: no
 * such token).
 */
export const LEASE_OR_ROOM = `${ROW_AND_ROOM}${LEASE_FN}${DONE_FN}
local f = lease(KEYS[1], KEYS[2], ARGV[1])
if f and ARGV[4] ~= '' then
  local item = cjson.decode(f)
  if item.event.id == ARGV[4] then
    done(KEYS[2], KEYS[4], KEYS[5], KEYS[6], ARGV[3], item)
    if type(item.from) == 'string' then redis.call('SET', ARGV[5] .. ARGV[4], item.from .. '|acknowledged', 'PX', ARGV[6]) end
    f = lease(KEYS[1], KEYS[2], ARGV[1])
  end
end
if f then return {f} end
local row, room = rowAndRoom(KEYS[3], ARGV[2])
return {false, row, room}
`;

/** Compare-and-set: swap the value only if it is still `old` ('' means: only if absent). */
export const ROOM_CAS = `
local cur = redis.call('GET', KEYS[1])
if (cur == false and ARGV[1] ~= '') or (cur ~= false and cur ~= ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`;

/**
 * Queues an item: fateTtl, when not '', records the message's receipt; leaseTtl, when not '',
 * then leases the head as LEASE does and returns it (a wait for the owner is held here).
 */
const PUSH_FN = `${LEASE_FN}
local function push(list, bytesKey, totalKey, expiryKey, fateKey, inflight, owner, item, bytes, score, member, ttl, fate, fateTtl, leaseTtl)
  redis.call('RPUSH', list, item)
  redis.call('PEXPIRE', list, ttl)
  redis.call('HINCRBY', bytesKey, owner, bytes)
  redis.call('INCRBY', totalKey, bytes)
  redis.call('ZADD', expiryKey, score, member)
  if fateTtl ~= '' then redis.call('SET', fateKey, fate, 'PX', fateTtl) end
  if leaseTtl == '' then return false end
  return lease(list, inflight, leaseTtl)
end
`;

/** The keys a push takes (PUSH_FN's first six parameters; the other nine are arguments). */
export const PUSH_KEYS = 6;

// KEYS: list, bytesKey, totalKey, expiryKey, fateKey, inflight   ARGV: owner, item, bytes, score,
// member, ttlMs, fate, fateTtlMs, leaseTtlMs (see PUSH_FN)
const PUSH = `${PUSH_FN}
return push(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9])
`;

// KEYS: list, inflight, bytesKey, totalKey   ARGV: owner. The owner's count (the in-flight item
// included) and bytes, and the bytes queued in all: what a send checks, in one command.
const SIZE = `${QUEUED_FN}
return queued(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1])
`;

// KEYS: list, inflight   ARGV: ttlMs. The in-flight item is handed out again until acked or put back.
const LEASE = `${LEASE_FN}
return lease(KEYS[1], KEYS[2], ARGV[1])
`;

// KEYS: inflight, bytesKey, totalKey, expiryKey, fateKey   ARGV: owner, id, fate, fateTtlMs (the
// message's receipt, when ARGV[4] is not ''; written even if the item was gone, as a separate SET would be)
const ACK = `${DONE_FN}
if ARGV[4] ~= '' then redis.call('SET', KEYS[5], ARGV[3], 'PX', ARGV[4]) end
local f = redis.call('GET', KEYS[1])
if not f then return 0 end
local item = cjson.decode(f)
if item.event.id ~= ARGV[2] then return 0 end
done(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], item)
return 1
`;

// KEYS: list, inflight, expiryKey   ARGV: owner, id, minExpiresAt
const NACK = `
local f = redis.call('GET', KEYS[2])
if not f then return 0 end
local item = cjson.decode(f)
if item.event.id ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[2])
if item.expiresAt < tonumber(ARGV[3]) then
  item.expiresAt = tonumber(ARGV[3])
  redis.call('ZADD', KEYS[3], item.expiresAt, ARGV[1] .. '|' .. ARGV[2])
  f = cjson.encode(item)
end
redis.call('LPUSH', KEYS[1], f)
return 1
`;

// KEYS: list, inflight, bytesKey, totalKey, expiryKey   ARGV: owner
const CLEAR = `
local all = redis.call('LRANGE', KEYS[1], 0, -1)
local f = redis.call('GET', KEYS[2])
if f then table.insert(all, 1, f) end
for _, s in ipairs(all) do
  local item = cjson.decode(s)
  redis.call('DECRBY', KEYS[4], item.bytes)
  redis.call('ZREM', KEYS[5], ARGV[1] .. '|' .. item.event.id)
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HDEL', KEYS[3], ARGV[1])
return all
`;

// KEYS: list, inflight, bytesKey, totalKey, expiryKey   ARGV: owner, id, member.
// Whoever removes the expiry entry acts on it; the item goes wherever it is (queued or in flight).
const EXPIRE_ONE = `
if redis.call('ZREM', KEYS[5], ARGV[3]) == 0 then return false end
local found = false
local f = redis.call('GET', KEYS[2])
if f and cjson.decode(f).event.id == ARGV[2] then
  found = f
  redis.call('DEL', KEYS[2])
else
  for _, s in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
    if cjson.decode(s).event.id == ARGV[2] then
      found = s
      redis.call('LREM', KEYS[1], 1, s)
      break
    end
  end
end
if found then
  local item = cjson.decode(found)
  redis.call('HINCRBY', KEYS[3], ARGV[1], -item.bytes)
  redis.call('DECRBY', KEYS[4], item.bytes)
end
return found
`;

// KEYS: counts (a hash of bucket → n)   ARGV: bucket, max. Counts one more unless the bucket holds max.
const QUOTA_TAKE = `
local n = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if n >= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
return 1
`;

// KEYS: counts   ARGV: bucket. One fewer; a bucket at zero is removed.
const QUOTA_GIVE = `
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
`;

/** Per-address caps: the check and the count in one step, so concurrent requests cannot overshoot. */
export const QUOTA_SCRIPTS = {
  quotaTake: { numberOfKeys: 1, lua: QUOTA_TAKE },
  quotaGive: { numberOfKeys: 1, lua: QUOTA_GIVE },
};

export const INBOX_SCRIPTS = {
  inboxPush: { numberOfKeys: 6, lua: PUSH },
  inboxLease: { numberOfKeys: 2, lua: LEASE },
  inboxSize: { numberOfKeys: 4, lua: SIZE },
  inboxAck: { numberOfKeys: 5, lua: ACK },
  inboxNack: { numberOfKeys: 3, lua: NACK },
  inboxClear: { numberOfKeys: 5, lua: CLEAR },
  inboxExpireOne: { numberOfKeys: 5, lua: EXPIRE_ONE },
};

// A loop detector's change, replayed on its copy if that copy is still at `version`: the journal
// (ARGV[from..]) lists the keys it remembered, in order, with '-1' where its young generation
// became the old one. Returns the new version, or -1 (nothing written) when another broker
// changed it first.
const DETECTOR_FN = `
local function detectorApply(kv, ky, ko, ks, version, state, ttl, from)
  local v = tonumber(redis.call('GET', kv) or '0')
  if v ~= tonumber(version) then return -1 end
  local batch = {}
  local function flush()
    if #batch > 0 then redis.call('SADD', ky, unpack(batch)); batch = {} end
  end
  for i = from, #ARGV do
    if ARGV[i] == '-1' then
      flush()
      if redis.call('EXISTS', ky) == 1 then redis.call('RENAME', ky, ko) else redis.call('DEL', ko) end
    else
      batch[#batch + 1] = ARGV[i]
      if #batch >= 500 then flush() end
    end
  end
  flush()
  redis.call('SET', ks, state, 'PX', ttl)
  redis.call('SET', kv, v + 1, 'PX', ttl)
  redis.call('PEXPIRE', ky, ttl)
  redis.call('PEXPIRE', ko, ttl)
  return v + 1
end
`;

/** KEYS: version, young set, old set, state   ARGV: version, state JSON, ttlMs, journal… */
export const DETECTOR_APPLY = `${DETECTOR_FN}
return detectorApply(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], 4)
`;

/**
 * A send's detector change and its turn as one step: the room's JSON is swapped (as ROOM_CAS) only
 * if it is still ARGV[4], and the detector changed (as DETECTOR_APPLY) only if still at ARGV[1];
 * either both or neither. KEYS: the detector's four, room   ARGV: version, state JSON, ttlMs,
 * room JSON read, room JSON new, room ttlMs, journal…  Returns the detector's new version, -1 when
 * the detector, -2 when the room changed first.
 */
const TURN_FN = `${DETECTOR_FN}
local function turn(from)
  if redis.call('GET', KEYS[5]) ~= ARGV[4] then return -2 end
  local v = detectorApply(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], from)
  if v >= 0 and ARGV[5] ~= ARGV[4] then redis.call('SET', KEYS[5], ARGV[5], 'PX', ARGV[6]) end
  return v
end
`;
export const DETECTOR_TURN = `${TURN_FN}
return turn(7)
`;

/**
 * The same, and the message the turn sends queued in the same step (a round trip less per
 * message). KEYS: as DETECTOR_TURN, then PUSH's six, then the sender's token   ARGV: as
 * DETECTOR_TURN up to the room's TTL, then PUSH's nine, then the guard (the sender's room id, or
 * '' for none; the owner's most messages, most bytes, and the most bytes queued in all), then the
 * journal. With a guard, nothing is done (-3) unless the token is still in that room, nor (-4, -5)
 * if the message would take the owner's inbox or all inboxes past their caps.
 * Returns {version or -1 to -5, the leased head or nil}.
 */
export const DETECTOR_TURN_PUSH = `${TURN_FN}${PUSH_FN}${QUEUED_FN}
if ARGV[16] ~= '' then
  if redis.call('HGET', KEYS[12], 'r') ~= ARGV[16] then return {-3} end
  local q = queued(KEYS[6], KEYS[11], KEYS[7], KEYS[8], ARGV[7])
  local bytes = tonumber(ARGV[9])
  if q[1] >= tonumber(ARGV[17]) or q[2] + bytes > tonumber(ARGV[18]) then return {-4} end
  if q[3] + bytes > tonumber(ARGV[19]) then return {-5} end
end
local v = turn(20)
if v < 0 then return {v} end
return {v, push(KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14], ARGV[15])}
`;
