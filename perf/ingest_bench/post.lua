-- wrk script: 600-byte JSON POSTs over keep-alive (issue 7 benchmark).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local head = '{"title":"Checkout button does nothing","severity":"high",' ..
             '"reporter":"ana@example.com","component":"web","notes":"'
local tail = '"}'
wrk.body = head .. string.rep("x", 600 - #head - #tail) .. tail
assert(#wrk.body == 600, "body is " .. #wrk.body .. " bytes")
