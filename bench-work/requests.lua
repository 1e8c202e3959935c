
-- Each request is a random line of the requests file: "<token>\t<json body>".
local entries = {}
local counter = 0

setup = function(thread)
  counter = counter + 1
  thread:set("thread_id", counter)
end

init = function(args)
  for line in io.lines(args[1]) do
    local token, body = line:match("^([^\t]*)\t(.*)$")
    local headers = { ["Content-Type"] = "application/json" }
    if token ~= "" then headers["Authorization"] = "Bearer " .. token end
    entries[#entries + 1] = wrk.format("POST", "/graphql", headers, body)
  end
  math.randomseed(thread_id * 7919)
end

request = function()
  return entries[math.random(#entries)]
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
