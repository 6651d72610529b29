"""The service's Lua scripts: each keeps a request at one Redis round trip (see `bento.store.RedisLink`)."""

from __future__ import annotations

from bento.rate_limit import GCRA_LUA

# First, when ARGV[5] is "1", the caller's rate limit (its key is the last of KEYS; ARGV[6], ARGV[7]: interval in
# microseconds, burst): a refused request reads nothing. Then per ticker: its feature date and the cached answer,
# else its vector (and, when ARGV[3] > 0, a lock, so only one caller computes a missing answer while the others wait
# for it). An intraday vector (the stream's) has an `as_of` time too: its answer is keyed by `date@as_of`, so a new
# bar's features never meet an older answer. KEYS: online hashes. ARGV[1]: cache key prefix (model, version,
# horizon); ARGV[2]: "1" when contributions are needed (a plain entry does not count then); ARGV[3]: lock ms;
# ARGV[4]: lock prefix; ARGV[7 + i]: the ticker of KEYS[i]. Returns {0, answers} or {milliseconds to wait, {}}:
# per ticker false, {date, cached answer} or {date, false, close, feature set, vector, locked, as_of or false}.
LOOKUP_SCRIPT = (
    GCRA_LUA
    + """
local n = #KEYS
if ARGV[5] == '1' then
  n = n - 1
  local wait = gcra(KEYS[#KEYS], tonumber(ARGV[6]), tonumber(ARGV[7]))
  if wait > 0 then return {wait, {}} end
end
local out = {}
local first, second = ':x', ':p'
if ARGV[2] == '0' then first, second = ':p', ':x' end
local lock_ms = tonumber(ARGV[3])
for i = 1, n do
  local key = KEYS[i]
  local stamp = redis.call('HMGET', key, 'date', 'as_of')
  local date, as_of = stamp[1], stamp[2]
  if not date then
    out[i] = false
  else
    local base = ARGV[1] .. ARGV[7 + i] .. ':' .. date
    if as_of then base = base .. '@' .. as_of end
    local cached = redis.call('GET', base .. first)
    if (not cached) and ARGV[2] == '0' then cached = redis.call('GET', base .. second) end
    if cached then
      out[i] = {date, cached}
    else
      local f = redis.call('HMGET', key, 'close', 'feature_set_version', 'vector')
      local locked = 0
      if lock_ms > 0 and redis.call('SET', ARGV[4] .. base, '1', 'NX', 'PX', lock_ms) then locked = 1 end
      out[i] = {date, false, f[1], f[2], f[3], locked, as_of or false}
    end
  end
end
return {0, out}
"""
)
# Many answers in one call, after charging the caller's rate limit (ARGV[1] "1": its key is KEYS[1]; ARGV[2],
# ARGV[3]: interval in microseconds, burst). ARGV[4]: cache key prefix; ARGV[5]: "1" when contributions are needed
# (else an explained answer serves too); ARGV[6]: "ticker:date" items joined by newlines (one argument rather than
# thousands: packing arguments is what costs the client). Returns {0, values} or {milliseconds to wait, {}}.
ANSWERS_SCRIPT = (
    GCRA_LUA
    + """
if ARGV[1] == '1' then
  local wait = gcra(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
  if wait > 0 then return {wait, {}} end
end
local keys = {}
for item in string.gmatch(ARGV[6], '[^\\n]+') do keys[#keys + 1] = ARGV[4] .. item end
local suffix = ':p'
if ARGV[5] == '1' then suffix = ':x' end
local out = {}
for i = 1, #keys, 1000 do
  local batch = {}
  for k = i, math.min(i + 999, #keys) do batch[#batch + 1] = keys[k] .. suffix end
  local values = redis.call('MGET', unpack(batch))
  for k = 1, #values do out[i + k - 1] = values[k] end
end
if ARGV[5] == '0' then
  local missing = {}
  for i = 1, #keys do
    if not out[i] then missing[#missing + 1] = i end
  end
  for i = 1, #missing, 1000 do
    local batch = {}
    for k = i, math.min(i + 999, #missing) do batch[#batch + 1] = keys[missing[k]] .. ':x' end
    local values = redis.call('MGET', unpack(batch))
    for k = 1, #values do out[missing[i + k - 1]] = values[k] end
  end
end
return {0, out}
"""
)
# Answers with a TTL. ARGV[1]: TTL seconds; ARGV[2]: keys joined by newlines; ARGV[3]: the values joined likewise
# (JSON without raw newlines).
STORE_SCRIPT = """
local values = {}
for value in string.gmatch(ARGV[3], '[^\\n]+') do values[#values + 1] = value end
local i = 0
for key in string.gmatch(ARGV[2], '[^\\n]+') do
  i = i + 1
  redis.call('SET', key, values[i], 'EX', ARGV[1])
end
return i
"""
