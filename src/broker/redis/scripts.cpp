#include "broker/redis/scripts.hpp"

#include <map>

namespace ccmulti::broker::redis {

const Script claim_script{"claim", R"lua(
local max = tonumber(ARGV[1])
local nq = tonumber(ARGV[2])
local now = ARGV[3]
local out, index, records = {}, {}, {}
local count = 0
local levels = (#KEYS - 2) / nq
local routing = {}
for q = 1, nq do routing[q] = cjson.encode(ARGV[3 + q]) end
for level = 0, levels - 1 do
  local live = {}
  for q = 1, nq do live[q] = true end
  local any = true
  while any and count < max do
    any = false
    for q = 1, nq do
      if count >= max then break end
      if live[q] then
        local payload = redis.call('RPOP', KEYS[2 + level * nq + q])
        if payload then
          any = true
          count = count + 1
          local tag = ARGV[3 + nq + count]
          index[#index + 1] = now
          index[#index + 1] = tag
          records[#records + 1] = tag
          records[#records + 1] = '[' .. payload .. ', "", ' .. routing[q] .. ']'
          out[#out + 1] = q - 1
          out[#out + 1] = payload
        else
          live[q] = false
        end
      end
    end
  end
end
if count > 0 then
  redis.call('ZADD', KEYS[2], unpack(index))
  redis.call('HSET', KEYS[1], unpack(records))
end
return out
)lua"};

const Script unpark_script{"unpark", R"lua(
local tags = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {''}
for _, tag in ipairs(tags) do
  redis.call('ZREM', KEYS[1], tag)
  local value = redis.call('HGET', KEYS[2], tag)
  if value then
    redis.call('ZADD', KEYS[3], 'XX', ARGV[3], tag)
    out[#out + 1] = tag
    out[#out + 1] = value
  end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] then out[1] = first[2] end
return out
)lua"};

const Script restore_script{"restore", R"lua(
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return 0 end
if ARGV[3] ~= '' and current ~= ARGV[3] then return 0 end
if ARGV[4] ~= '' then
  local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
  if not score or tonumber(score) > tonumber(ARGV[4]) then return 0 end
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('RPUSH', KEYS[3], ARGV[2])
return 1
)lua"};

// Any number of results (KEYS: their keys; ARGV[1]: the expiry in seconds, then one JSON text per key), each
// stored and published unless its key already holds a final state; one call per batch a node settles.
const Script store_result_script{"store_results", R"lua(
local expires = tonumber(ARGV[1])
local stored = 0
for i = 1, #KEYS do
  local keep = false
  local current = redis.call('GET', KEYS[i])
  if current then
    local ok, meta = pcall(cjson.decode, current)
    keep = ok and type(meta) == 'table' and
      (meta.status == 'SUCCESS' or meta.status == 'FAILURE' or meta.status == 'REVOKED')
  end
  if not keep then
    if expires > 0 then
      redis.call('SETEX', KEYS[i], ARGV[1], ARGV[i + 1])
    else
      redis.call('SET', KEYS[i], ARGV[i + 1])
    end
    redis.call('PUBLISH', KEYS[i], ARGV[i + 1])
    stored = stored + 1
  end
end
return stored
)lua"};

const Script release_lock_script{"release_lock", R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua"};

namespace {

std::map<const Script*, std::string>& known_shas() {
    static std::map<const Script*, std::string> shas;  // the SHA1 of a source never changes
    return shas;
}

}  // namespace

std::string script_sha(Connection& connection, const Script& script, bool reload) {
    auto& shas = known_shas();
    if (auto known = shas.find(&script); known != shas.end() && !reload) return known->second;
    Reply loaded = connection.command({"SCRIPT", "LOAD", script.source});
    return shas[&script] = loaded.string();
}

Reply eval(Connection& connection, const Script& script, const std::vector<std::string>& keys,
           const std::vector<std::string>& args) {
    auto call = [&](const std::string& sha) {
        Command command{"EVALSHA", sha, std::to_string(keys.size())};
        command.insert(command.end(), keys.begin(), keys.end());
        command.insert(command.end(), args.begin(), args.end());
        return connection.try_command(command);
    };
    Reply reply = call(script_sha(connection, script));
    if (reply.is_error() && reply.text().starts_with("NOSCRIPT")) reply = call(script_sha(connection, script, true));
    if (reply.is_error()) connection.refuse(std::string("script ") + script.name, reply);
    return reply;
}

}  // namespace ccmulti::broker::redis
