//! The Lua scripts that keep training jobs in Redis. Each step that reads and then writes is one script, so
//! replicas racing each other cannot take one job twice, overshoot a bound or lose a queue entry.
//!
//! Layout (every key under `more:`; `{id}` is a job id, `{c}` a client as per-client limits name it):
//!
//! - `job:{id}`: a hash — `record` (the JSON [`Record`](super::store::Record) as posted), `client`, `rows`,
//!   `bytes` (the upload's size), `created`, `state`, `error` (JSON `[code, message]`), `attempts`,
//!   `epochs_done`, `next` (the next event id), `ahead` (its place while it waits), `deleted` (`1` once
//!   deleted: gone for every route, kept a minute so open streams read the last event);
//! - `job:{id}:data`, `job:{id}:model`: the upload and the trained (encrypted) model;
//! - `job:{id}:events`: the event log, a list of `"<id> <kind> <json>"`; a `step` or `queued` event
//!   replaces the one before it when that is of the same kind, as in memory;
//! - `job:{id}:lease`: the replica training the job, with a time to live that the replica renews; a job
//!   marked running without a lease is taken up again by any replica;
//! - `jobs`: a sorted set of every held job by creation time (the `--max-held-jobs` bound and the time to
//!   live); `jobs:client:{c}`: the jobs of a client that still hold resources (the per-client bound);
//!   `jobs:running`: the jobs being trained;
//! - `queue:clients`: the clients with jobs waiting, in the order they are served; `queue:client:{c}`: a
//!   client's waiting jobs in arrival order; `queue:bytes` and `queue:count`: what the queue holds.

/// Functions every script starts with.
const PRELUDE: &str = r#"
local P = 'more:'
local function jk(id) return P .. 'job:' .. id end
local function live(id)
  local h = jk(id)
  return redis.call('EXISTS', h) == 1 and redis.call('HGET', h, 'deleted') ~= '1'
end
local function push_event(id, kind, data)
  local h = jk(id)
  local n = redis.call('HINCRBY', h, 'next', 1) - 1
  local ek = h .. ':events'
  if kind == 'step' or kind == 'queued' then
    local last = redis.call('LINDEX', ek, -1)
    if last and string.match(last, '^%d+ (%S+) ') == kind then redis.call('RPOP', ek) end
  end
  redis.call('RPUSH', ek, n .. ' ' .. kind .. ' ' .. data)
  local ttl = redis.call('PTTL', h)
  if ttl > 0 then redis.call('PEXPIRE', ek, ttl) end
  return n
end
local function tell_places()
  local clients = redis.call('LRANGE', P .. 'queue:clients', 0, -1)
  local lines, longest = {}, 0
  for i, c in ipairs(clients) do
    lines[i] = redis.call('LRANGE', P .. 'queue:client:' .. c, 0, -1)
    if #lines[i] > longest then longest = #lines[i] end
  end
  local ahead = 0
  for r = 1, longest do
    for i = 1, #clients do
      local id = lines[i][r]
      if id then
        local h = jk(id)
        if redis.call('HGET', h, 'ahead') ~= tostring(ahead) then
          redis.call('HSET', h, 'ahead', ahead)
          local rows = redis.call('HGET', h, 'rows') or '0'
          push_event(id, 'queued', '{"rows":' .. rows .. ',"ahead":' .. ahead .. '}')
        end
        ahead = ahead + 1
      end
    end
  end
end
local function dequeue(id)
  local h = jk(id)
  local c = redis.call('HGET', h, 'client')
  if not c then return 0 end
  local q = P .. 'queue:client:' .. c
  local n = redis.call('LREM', q, 0, id)
  if n > 0 then
    redis.call('DECRBY', P .. 'queue:bytes', tonumber(redis.call('HGET', h, 'bytes') or '0'))
    redis.call('DECR', P .. 'queue:count')
    if redis.call('LLEN', q) == 0 then redis.call('LREM', P .. 'queue:clients', 0, c) end
  end
  return n
end
local function enqueue(id, front)
  local h = jk(id)
  local c = redis.call('HGET', h, 'client')
  local q = P .. 'queue:client:' .. c
  if front then redis.call('LPUSH', q, id) else redis.call('RPUSH', q, id) end
  if redis.call('LPOS', P .. 'queue:clients', c) == false then
    if front then redis.call('LPUSH', P .. 'queue:clients', c) else redis.call('RPUSH', P .. 'queue:clients', c) end
  end
  redis.call('INCRBY', P .. 'queue:bytes', tonumber(redis.call('HGET', h, 'bytes') or '0'))
  redis.call('INCR', P .. 'queue:count')
  redis.call('HSET', h, 'state', 'queued')
  redis.call('HDEL', h, 'ahead')
end
local function release(id)
  local h = jk(id)
  local c = redis.call('HGET', h, 'client')
  if c then redis.call('SREM', P .. 'jobs:client:' .. c, id) end
  redis.call('SREM', P .. 'jobs:running', id)
  redis.call('DEL', h .. ':data', h .. ':lease')
end
local function fail(id, code, message)
  local h = jk(id)
  dequeue(id)
  release(id)
  redis.call('DEL', h .. ':model')
  redis.call('HSET', h, 'state', 'failed', 'error', cjson.encode({code, message}))
  push_event(id, 'failed', cjson.encode({error = code, message = message}))
end
local function forget(id, message)
  local h = jk(id)
  if redis.call('EXISTS', h) == 0 then
    redis.call('ZREM', P .. 'jobs', id)
    redis.call('SREM', P .. 'jobs:running', id)
    return
  end
  dequeue(id)
  release(id)
  redis.call('DEL', h .. ':model')
  redis.call('ZREM', P .. 'jobs', id)
  redis.call('HSET', h, 'deleted', '1')
  push_event(id, 'cancelled', cjson.encode({message = message}))
  redis.call('PEXPIRE', h, 60000)
  redis.call('PEXPIRE', h .. ':events', 60000)
end
"#;

/// Held, per-client and queue figures: `ARGV` = client. Returns `{held, of_client, waiting, bytes}`.
pub const COUNTS: &str = r#"
return {redis.call('ZCARD', P .. 'jobs'), redis.call('SCARD', P .. 'jobs:client:' .. ARGV[1]),
        tonumber(redis.call('GET', P .. 'queue:count') or '0'), tonumber(redis.call('GET', P .. 'queue:bytes') or '0')}
"#;

/// Stores and queues a new job: `ARGV` = id, client, record JSON, rows, bytes, created (s), keep (ms),
/// max held, max per client, max queue bytes, the upload. Returns `{0}` (queued), `{1, held}` (the
/// server holds all the jobs it may), `{2}` (the client holds all its jobs) or `{3, bytes}` (the queue
/// holds all the bytes it may).
pub const CREATE: &str = r#"
local id, c, bytes, keep = ARGV[1], ARGV[2], tonumber(ARGV[5]), tonumber(ARGV[7])
local held = redis.call('ZCARD', P .. 'jobs')
if held >= tonumber(ARGV[8]) then return {1, held} end
if redis.call('SCARD', P .. 'jobs:client:' .. c) >= tonumber(ARGV[9]) then return {2, 0} end
local waiting = tonumber(redis.call('GET', P .. 'queue:count') or '0')
local queued = tonumber(redis.call('GET', P .. 'queue:bytes') or '0')
if waiting > 0 and queued + bytes > tonumber(ARGV[10]) then return {3, queued} end
local h = jk(id)
redis.call('HSET', h, 'record', ARGV[3], 'client', c, 'rows', ARGV[4], 'bytes', bytes, 'created', ARGV[6],
           'attempts', 0, 'epochs_done', 0, 'next', 0)
redis.call('PEXPIRE', h, keep)
redis.call('SET', h .. ':data', ARGV[11], 'PX', keep)
redis.call('ZADD', P .. 'jobs', tonumber(ARGV[6]), id)
redis.call('SADD', P .. 'jobs:client:' .. c, id)
enqueue(id, false)
tell_places()
return {0, 0}
"#;

/// Takes the next job for a replica: `ARGV` = the replica, the lease (ms). Returns `{}` when none waits,
/// else `{id, record JSON, attempts}`; the job is marked running under the replica's lease.
pub const TAKE: &str = r#"
while true do
  local c = redis.call('LPOP', P .. 'queue:clients')
  if not c then return {} end
  local q = P .. 'queue:client:' .. c
  local id = redis.call('LPOP', q)
  if redis.call('LLEN', q) > 0 then redis.call('RPUSH', P .. 'queue:clients', c) end
  if id then
    local h = jk(id)
    redis.call('DECR', P .. 'queue:count')
    redis.call('DECRBY', P .. 'queue:bytes', tonumber(redis.call('HGET', h, 'bytes') or '0'))
    if live(id) then
      redis.call('HSET', h, 'state', 'running')
      redis.call('HDEL', h, 'ahead')
      local attempts = redis.call('HINCRBY', h, 'attempts', 1)
      redis.call('SET', h .. ':lease', ARGV[1], 'PX', tonumber(ARGV[2]))
      redis.call('SADD', P .. 'jobs:running', id)
      tell_places()
      return {id, redis.call('HGET', h, 'record'), attempts}
    end
  end
end
"#;

/// Renews a replica's lease on a job: `ARGV` = id, replica, lease (ms). Returns 1, or 0 when the job is
/// gone, deleted or no longer this replica's (training must stop).
pub const RENEW: &str = r#"
local h = jk(ARGV[1])
if not live(ARGV[1]) or redis.call('GET', h .. ':lease') ~= ARGV[2] then return 0 end
redis.call('PEXPIRE', h .. ':lease', tonumber(ARGV[3]))
return 1
"#;

/// Appends an event of the training replica: `ARGV` = id, replica, kind, JSON data, epochs done (or
/// empty). Returns 1, or 0 when the job is no longer this replica's (training must stop).
pub const EVENT: &str = r#"
local h = jk(ARGV[1])
if not live(ARGV[1]) or redis.call('GET', h .. ':lease') ~= ARGV[2] then return 0 end
if ARGV[5] ~= '' then redis.call('HSET', h, 'epochs_done', ARGV[5]) end
push_event(ARGV[1], ARGV[3], ARGV[4])
return 1
"#;

/// Publishes a trained model: `ARGV` = id, replica, the model, the `done` event's JSON. Returns 1, or 0
/// when the job is no longer this replica's (the model is dropped).
pub const FINISH: &str = r#"
local id = ARGV[1]
local h = jk(id)
if not live(id) or redis.call('GET', h .. ':lease') ~= ARGV[2] then return 0 end
local keep = redis.call('PTTL', h)
if keep <= 0 then keep = 3600000 end
redis.call('SET', h .. ':model', ARGV[3], 'PX', keep)
redis.call('HSET', h, 'state', 'done')
redis.call('SREM', P .. 'jobs:running', id)
redis.call('DEL', h .. ':data', h .. ':lease')
push_event(id, 'done', ARGV[4])
return 1
"#;

/// Fails a job: `ARGV` = id, replica (or empty: whoever holds it), code, message. Returns 1, or 0 when
/// the job is gone or another replica's.
pub const FAIL: &str = r#"
local h = jk(ARGV[1])
if not live(ARGV[1]) then return 0 end
if ARGV[2] ~= '' and redis.call('GET', h .. ':lease') ~= ARGV[2] then return 0 end
fail(ARGV[1], ARGV[3], ARGV[4])
return 1
"#;

/// Deletes a job (cancelled by its client): `ARGV` = id. Returns 1, or 0 when there is no such job.
pub const DELETE: &str = r#"
if not live(ARGV[1]) then return 0 end
forget(ARGV[1], 'the job was deleted')
tell_places()
return 1
"#;

/// Hands over a trained model once, then deletes the job: `ARGV` = id. Returns `{0}` (no such job),
/// `{1, state}` (not trained yet), `{2, error JSON}` (failed), `{3, model}` or `{4}` (the model is missing).
pub const MODEL: &str = r#"
local id = ARGV[1]
if not live(id) then return {0} end
local h = jk(id)
local state = redis.call('HGET', h, 'state')
if state == 'failed' then return {2, redis.call('HGET', h, 'error') or '["failed",""]'} end
if state ~= 'done' then return {1, state} end
local model = redis.call('GET', h .. ':model')
if not model then
  fail(id, 'lost', 'the trained model is missing from the shared state')
  return {4}
end
forget(id, 'the job was deleted')
return {3, model}
"#;

/// Events after an id: `ARGV` = id, the last id the client has (or -1), the most to return. Returns
/// `{found, over, event...}`: found is 0 when the job is gone; over is 1 when the log ends with a final
/// event (and none is left after the given id).
pub const EVENTS: &str = r#"
local h = jk(ARGV[1])
if redis.call('EXISTS', h) == 0 then return {0, 0} end
local ek = h .. ':events'
local after, most = tonumber(ARGV[2]), tonumber(ARGV[3])
local n = redis.call('LLEN', ek)
local first = n
while first > 0 do
  local e = redis.call('LINDEX', ek, first - 1)
  if tonumber(string.match(e, '^(%d+) ')) <= after then break end
  first = first - 1
end
local out = {1, 0}
if first < n then
  for _, e in ipairs(redis.call('LRANGE', ek, first, first + most - 1)) do table.insert(out, e) end
else
  local last = redis.call('LINDEX', ek, -1)
  local kind = last and string.match(last, '^%d+ (%S+) ')
  if kind == 'done' or kind == 'failed' or kind == 'cancelled' then out[2] = 1 end
end
return out
"#;

/// The sweep every replica runs: jobs older than the time to live are deleted, and jobs marked running
/// whose replica's lease ran out are queued again (at the front of their client's line, with a `resumed`
/// event) or failed after `ARGV[3]` attempts. `ARGV` = the creation-time cutoff (s), the `resumed` event's
/// JSON, the most attempts. Returns `{expired, resumed}`.
pub const SWEEP: &str = r#"
local expired, resumed = 0, 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'jobs', '-inf', '(' .. ARGV[1])) do
  forget(id, 'the job\'s time to live is over')
  expired = expired + 1
end
for _, id in ipairs(redis.call('SMEMBERS', P .. 'jobs:running')) do
  local h = jk(id)
  if not live(id) then
    redis.call('SREM', P .. 'jobs:running', id)
  elseif redis.call('EXISTS', h .. ':lease') == 0 then
    redis.call('SREM', P .. 'jobs:running', id)
    if tonumber(redis.call('HGET', h, 'attempts') or '0') >= tonumber(ARGV[3]) then
      fail(id, 'lost', 'training was interrupted by replica restarts ' .. ARGV[3] .. ' times')
    elseif redis.call('EXISTS', h .. ':data') == 0 then
      fail(id, 'lost', 'the job\'s data is missing from the shared state')
    else
      redis.call('HSET', h, 'epochs_done', 0)
      push_event(id, 'resumed', ARGV[2])
      enqueue(id, true)
      resumed = resumed + 1
    end
  end
end
if expired + resumed > 0 then tell_places() end
return {expired, resumed}
"#;

/// Lets go of the jobs a stopping replica trains: `ARGV` = the replica. Their leases are deleted, so the
/// next sweep (on any replica) queues them again. Returns how many.
pub const RELEASE: &str = r#"
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', P .. 'jobs:running')) do
  local lease = jk(id) .. ':lease'
  if redis.call('GET', lease) == ARGV[1] then
    redis.call('DEL', lease)
    n = n + 1
  end
end
return n
"#;

/// A script with the prelude, built (and its SHA-1 computed) once per script: the training threads append
/// an event per step and every open stream polls its log, so scripts are invoked often.
pub fn script(body: &'static str) -> &'static redis::Script {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static BUILT: OnceLock<Mutex<HashMap<usize, &'static redis::Script>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    built
        .entry(body.as_ptr() as usize)
        .or_insert_with(|| Box::leak(Box::new(redis::Script::new(&format!("{PRELUDE}\n{body}")))))
}
