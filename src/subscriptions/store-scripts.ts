import type { ScriptDefinition } from '../shared/index.js';

// Deleted and inert markers outlive a replay window, then go; their only job is to stop a
// replayed older record from bringing a subscription back.
const MARKER_TTL_MS = 7 * 24 * 3600 * 1000;

// The layout, and why. Redis Cluster runs a script only on keys of one hash slot, so the table is
// cut into buckets (src/shared/redis.ts), each with its own copy of what a lookup needs:
//   {b}:idx:<project>:<event>  set of webhook ids       (projects of bucket b)
//   {b}:ver:<id>               what of <id> bucket b holds: position and index keys
//   {b}:ready, {b}:building:*  the completeness marker of bucket b
//   {b}:home:<id>, {b}:live    the record of each id homed in b (b = bucket of the id), and its JSON
// A subscription's JSON is kept once, at its home: a copy in each bucket of its projects made the
// widest subscriptions cost megabytes each (`npm run bench:table`). A lookup for a project reads one bucket,
// atomically, and answers ids with the version each bucket indexed; the JSON of a version a
// replica has not compiled yet is read from the homes in a second round trip (SubscriptionTable).
// A change is applied in two steps: first at
// the id's home, which decides (newer or not) and says which buckets held the id before, then in
// each bucket it leaves or enters. Each bucket step is ordered by the record's position on its
// own, so replicas applying the same records in any interleaving, or a replica that died between
// the steps, leave the same result once a replica has applied the record (the home says "already
// applied" with code 2, and the bucket steps run again, harmlessly). A bucket whose master lost
// its data has lost its marker too, and refuses lookups until the table is rebuilt.

// Is (part, off, at) later than what is stored (curPart, curOff, curAt)? The topic decides: in one
// partition the later offset wins, whatever the record claims (a producer's clock may run ahead),
// and a later record always replaces an earlier one, put, disable and delete alike. A version in
// another partition (the topic gained partitions, and the key moved) is later when its time
// (RecordPosition.atMs) is, the higher partition breaking a tie. `equal`: whether the same
// position counts as later (a bucket step repeated).
const IS_LATER = `
local function isLater(curPart, curOff, curAt, part, off, at, equal)
  if not curPart then return true end
  if curPart == part then
    local c = tonumber(curOff)
    return tonumber(off) > c or (equal and tonumber(off) == c)
  end
  local c = tonumber(curAt)
  return tonumber(at) > c or (tonumber(at) == c and tonumber(part) > tonumber(curPart))
end
`;

// The home step. Returns {code, projects before, buckets before}: 0 not later (a replay, or an
// older version from another partition), 1 applied, 2 the record applied last, again: its bucket
// steps are repeated over the buckets the version before it held (kept as 'pbkts'), in case its
// first application stopped halfway. One exception to "again": an unusable record at the
// position of the put applied last replaces it. That is how a put whose application Redis refused
// is made inert (SubscriptionApplier), and its buckets are then the put's and those before it.
// A delete or an unusable record is kept as a marker (for MARKER_TTL_MS), so that a replayed
// older record cannot bring the webhook back.
const APPLY_HOME = `${IS_LATER}
local home, live = KEYS[1], KEYS[2]
local id, part, off, at, kind, json, prj, bkts = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local cur = redis.call('HMGET', home, 'part', 'off', 'at', 'prj', 'bkts', 'pbkts', 'state')
local oldPrj, before = cur[4] or '[]', cur[5] or '[]'
if cur[1] == part and tonumber(cur[2]) == tonumber(off) then
  if kind ~= 'inert' or cur[7] == 'inert' then return {2, oldPrj, cur[6] or '[]'} end
  local seen, all = {}, {}
  for _, list in ipairs({cjson.decode(before), cjson.decode(cur[6] or '[]')}) do
    for _, b in ipairs(list) do
      if not seen[b] then seen[b] = true; all[#all + 1] = b end
    end
  end
  before = #all == 0 and '[]' or cjson.encode(all)
elseif not isLater(cur[1], cur[2], cur[3], part, off, at, false) then
  return {0, oldPrj, before}
end
if kind == 'put' then
  redis.call('HSET', home, 'part', part, 'off', off, 'at', at, 'state', 'live', 'json', json, 'prj', prj, 'bkts', bkts, 'pbkts', before)
  redis.call('PERSIST', home)
  redis.call('SADD', live, id)
else
  redis.call('HSET', home, 'part', part, 'off', off, 'at', at, 'state', kind, 'json', json, 'prj', '[]', 'bkts', '[]', 'pbkts', before)
  redis.call('PEXPIRE', home, ${MARKER_TTL_MS})
  redis.call('SREM', live, id)
end
return {1, oldPrj, before}
`;

// The bucket step: the index keys bucket b holds for one id become this version's (none: '[]'),
// unless b already holds a later version.
const APPLY_BUCKET = `${IS_LATER}
local ver = KEYS[1]
local id, part, off, at, idx = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local cur = redis.call('HMGET', ver, 'part', 'off', 'at', 'idx')
if not isLater(cur[1], cur[2], cur[3], part, off, at, true) then return 0 end
if cur[4] then
  for _, k in ipairs(cjson.decode(cur[4])) do redis.call('SREM', k, id) end
end
local keys = cjson.decode(idx)
for _, k in ipairs(keys) do redis.call('SADD', k, id) end
redis.call('HSET', ver, 'part', part, 'off', off, 'at', at, 'idx', idx)
if #keys > 0 then redis.call('PERSIST', ver) else redis.call('PEXPIRE', ver, ${MARKER_TTL_MS}) end
return 1
`;

// Candidates of many (project, event type) pairs of one bucket in one call: for each pair, id and
// version, one after the other. ARGV[1] is where the bucket's 'ver:<id>' keys start, the rest are
// index keys (all in the bucket's slot). Refuses to answer while the bucket is not marked complete
// (after a Redis flush or a master that lost its data), so nobody mistakes an empty table for "no
// match".
const LOOKUP = `
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('NOTREADY subscription table is being rebuilt') end
local out = {}
for i = 2, #ARGV do
  local found = {}
  for _, id in ipairs(redis.call('SMEMBERS', ARGV[i])) do
    local v = redis.call('HMGET', ARGV[1] .. id, 'part', 'off')
    if v[1] then
      found[#found + 1] = id
      found[#found + 1] = v[1] .. ':' .. v[2]
    end
  end
  out[i - 1] = found
end
return out
`;

// One live subscription by id, from its home: {version, json}; the same readiness rule as LOOKUP.
const GET = `
if redis.call('EXISTS', KEYS[2]) == 0 then return redis.error_reply('NOTREADY subscription table is being rebuilt') end
local s = redis.call('HMGET', KEYS[1], 'state', 'part', 'off', 'json')
if s[1] ~= 'live' then return false end
return {s[2] .. ':' .. s[3], s[4]}
`;

const MARK_READY = `
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], '1')
return 1
`;

/** The table's scripts, by the command names SubscriptionStore calls them with. */
export const STORE_SCRIPTS: Record<string, ScriptDefinition> = {
  subsApplyHome: { numberOfKeys: 2, lua: APPLY_HOME },
  subsApplyBucket: { numberOfKeys: 1, lua: APPLY_BUCKET },
  subsLookup: { numberOfKeys: 1, lua: LOOKUP },
  subsGet: { numberOfKeys: 2, lua: GET },
  subsMarkReady: { numberOfKeys: 2, lua: MARK_READY },
};
