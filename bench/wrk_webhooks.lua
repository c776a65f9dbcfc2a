-- wrk script: POST pre-signed Shopify webhooks, each with its own X-Shopify-Webhook-Id.
-- Usage: wrk -t T -s bench/wrk_webhooks.lua URL -- REQUESTS_FILE DOMAIN T
-- The file has one request a line: webhook_id <TAB> hmac <TAB> body. Thread n of N takes lines
-- n, n+N, n+2N ... so no two threads ever send the same webhook id.
local counter = 0

function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
end

function init(args)
  local file, domain, nthreads = args[1], args[2], tonumber(args[3])
  local index = tonumber(wrk.thread:get("index"))
  requests_list = {}
  position = 0
  local n = 0
  for line in io.lines(file) do
    if n % nthreads == index then
      local id, sig, body = line:match("^([^\t]+)\t([^\t]+)\t(.*)$")
      requests_list[#requests_list + 1] = wrk.format("POST", nil, {
        ["Content-Type"] = "application/json",
        ["X-Shopify-Topic"] = "orders/create",
        ["X-Shopify-Hmac-Sha256"] = sig,
        ["X-Shopify-Shop-Domain"] = domain,
        ["X-Shopify-Webhook-Id"] = id,
        ["X-Shopify-API-Version"] = "2026-10",
      }, body)
    end
    n = n + 1
  end
end

function request()
  position = position + 1
  if position > #requests_list then position = 1 end
  return requests_list[position]
end
