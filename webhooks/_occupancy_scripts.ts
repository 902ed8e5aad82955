/**
 * The Lua scripts of {@linkcode RedisOccupancy}. Redis runs each one atomically, so of several
 * instances exactly one sees a holder count go from 0 to 1 or from 1 to 0, and exactly one pops
 * a user whose grace ended.
 *
 * Keys (all after the deployment's prefix, which every script takes as `ARGV[1]`; the scripts
 * build their keys, so they need one Redis, not a Redis Cluster):
 *   webhook:user:<user>, webhook:room:<room>  hash: a field per instance holding it ("1")
 *   webhook:users:<id>, webhook:rooms:<id>    set: what instance <id> holds, for reaping it
 *   webhook:alive:<id>                        string with a PX TTL: <id> is alive
 *   webhook:instances                         set: instances that may hold something
 *   webhook:offline                           zset: users held nowhere, by when they left
 *
 * @module
 */

// Shared by the scripts below. `now` is Redis's clock, so instances' clocks never disagree on
// a grace. A hash left without fields is deleted by Redis itself.
const PRELUDE = `
local p = ARGV[1]
local offlineKey = p .. 'webhook:offline'
local instancesKey = p .. 'webhook:instances'
local function holders(kind, name) return p .. 'webhook:' .. kind .. ':' .. name end
local function heldBy(kind, id) return p .. 'webhook:' .. kind .. 's:' .. id end
local function alive(id) return p .. 'webhook:alive:' .. id end
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function beat(me, ttl)
  local missing = redis.call('SET', alive(me), '1', 'PX', ttl, 'GET') == false
  redis.call('SADD', instancesKey, me)
  if missing then return 1 end
  return 0
end
-- Takes instance id out of every holder hash it is in: a user left with no holder starts its
-- grace at t, a room left with none is vacated (appended to vacated).
local function reap(id, t, vacated)
  for _, user in ipairs(redis.call('SMEMBERS', heldBy('user', id))) do
    local key = holders('user', user)
    if redis.call('HDEL', key, id) == 1 and redis.call('EXISTS', key) == 0 then
      redis.call('ZADD', offlineKey, t, user)
    end
  end
  for _, room in ipairs(redis.call('SMEMBERS', heldBy('room', id))) do
    local key = holders('room', room)
    if redis.call('HDEL', key, id) == 1 and redis.call('EXISTS', key) == 0 then
      vacated[#vacated + 1] = room
    end
  end
  redis.call('DEL', heldBy('user', id), heldBy('room', id))
  redis.call('SREM', instancesKey, id)
end
local function reapDead(me, t, vacated)
  for _, id in ipairs(redis.call('SMEMBERS', instancesKey)) do
    if id ~= me and redis.call('EXISTS', alive(id)) == 0 then reap(id, t, vacated) end
  end
end
-- Pops the users who left at or before cutoff and are still held nowhere: user, left at, ...
local function sweep(cutoff, limit)
  local offline = {}
  local due = redis.call('ZRANGEBYSCORE', offlineKey, '-inf', cutoff, 'WITHSCORES', 'LIMIT', 0,
    limit)
  for i = 1, #due, 2 do
    redis.call('ZREM', offlineKey, due[i])
    if redis.call('EXISTS', holders('user', due[i])) == 0 then
      offline[#offline + 1] = due[i]
      offline[#offline + 1] = due[i + 1]
    end
  end
  return offline
end
`;

/**
 * This instance gained or lost users and rooms. ARGV: prefix, instance, liveness TTL (ms), then
 * per change its kind ("user", "room"), name and "+" (now held here) or "-" (no longer).
 * A user held again within its grace leaves the offline set and is not announced again.
 * Returns: 1 if this instance's liveness key had expired (it may have been reaped), 1 if a user
 * started a grace, and the events as a flat list of type, name.
 */
export const APPLY_SCRIPT = PRELUDE + `
local me = ARGV[2]
local t = now()
local missing = beat(me, ARGV[3])
local events = {}
local leaving = 0
for i = 4, #ARGV, 3 do
  local kind, name = ARGV[i], ARGV[i + 1]
  local key = holders(kind, name)
  if ARGV[i + 2] == '+' then
    redis.call('SADD', heldBy(kind, me), name)
    if redis.call('HSET', key, me, '1') == 1 and redis.call('HLEN', key) == 1 then
      if kind == 'room' then
        events[#events + 1] = 'room.occupied'
        events[#events + 1] = name
      elseif redis.call('ZREM', offlineKey, name) == 0 then
        events[#events + 1] = 'user.online'
        events[#events + 1] = name
      end
    end
  else
    redis.call('SREM', heldBy(kind, me), name)
    if redis.call('HDEL', key, me) == 1 and redis.call('EXISTS', key) == 0 then
      if kind == 'room' then
        events[#events + 1] = 'room.vacated'
        events[#events + 1] = name
      else
        redis.call('ZADD', offlineKey, t, name)
        leaving = 1
      end
    end
  end
end
return {missing, leaving, events}
`;

/**
 * The heartbeat: refreshes this instance's liveness, reaps instances whose liveness expired,
 * and pops users whose grace ended. ARGV: prefix, instance, liveness TTL (ms), grace (ms),
 * most users popped. Returns: 1 if this instance's liveness key had expired, the rooms vacated
 * by reaping, the users gone offline (user, left at ms, ...), and the ms until the next grace
 * ends (-1: none pending).
 */
export const BEAT_SCRIPT = PRELUDE + `
local me, grace = ARGV[2], tonumber(ARGV[4])
local t = now()
local missing = beat(me, ARGV[3])
local vacated = {}
reapDead(me, t, vacated)
local offline = sweep(t - grace, ARGV[5])
local first = redis.call('ZRANGE', offlineKey, 0, 0, 'WITHSCORES')[2]
local wait = -1
if first then wait = math.max(0, tonumber(first) + grace - t) end
return {missing, vacated, offline, wait}
`;

/**
 * A clean stop: this instance is reaped like a dead one (its users start their grace, its last
 * rooms are vacated), and so is any other dead one. The last instance out also pops every user
 * still in a grace, since no instance is left to end it. ARGV: prefix, instance. Returns the
 * rooms vacated and the users gone offline (user, left at ms, ...).
 */
export const LEAVE_SCRIPT = PRELUDE + `
local me = ARGV[2]
local t = now()
redis.call('DEL', alive(me))
local vacated = {}
reap(me, t, vacated)
reapDead(me, t, vacated)
local offline = {}
if redis.call('SCARD', instancesKey) == 0 then offline = sweep('+inf', -1) end
return {vacated, offline}
`;

/** The scripts as ioredis commands, once defined on a connection. */
export interface OccupancyCommands {
  webhookApply(...args: string[]): Promise<[number, number, string[]]>;
  webhookBeat(...args: string[]): Promise<[number, string[], string[], number]>;
  webhookLeave(...args: string[]): Promise<[string[], string[]]>;
}
