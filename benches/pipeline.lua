-- wrk script: HTTP/1.1 pipelining. Each connection sends `depth` GET requests
-- back to back and waits for all `depth` responses before the next batch;
-- wrk counts every response as a request.
-- usage: wrk -t1 -c50 -d5s --latency -s benches/pipeline.lua http://127.0.0.1:PORT/ -- 16
local depth = 16

init = function(args)
   depth = tonumber(args[1]) or depth
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format(nil, "/")
   end
   req = table.concat(r)
end

request = function()
   return req
end
